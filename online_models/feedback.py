"""How much each kind of event says about a user's interest in an item.

>>> from streamreco.events import ShopEvent
>>> interaction_weight(ShopEvent(event_id="1", type="purchase", user_id="u", item_id="i", ts=0))
5.0
>>> interaction_weight(ShopEvent(event_id="2", type="search", user_id="u", ts=0, text="tent")) is None
True
"""

from __future__ import annotations

from streamreco.events import ShopEvent

#: Implicit-feedback weight per event type; ``rating`` and ``review`` are handled below.
EVENT_WEIGHTS = {"view": 1.0, "click": 1.5, "add_to_cart": 3.0, "purchase": 5.0}


def interaction_weight(event: ShopEvent) -> float | None:
    """The learning weight of ``event``, or ``None`` when it teaches no model."""
    if event.type in EVENT_WEIGHTS:
        return EVENT_WEIGHTS[event.type]
    if event.type == "rating":
        # every rating is an interaction; higher ratings count more (1..5 stars -> 0.6..1.4)
        return 0.4 + 0.2 * max(0.0, min(float(event.value or 0.0), 5.0))
    if event.type == "review":
        return 1.0
    return None  # remove_from_cart, search: recorded, not learned from
