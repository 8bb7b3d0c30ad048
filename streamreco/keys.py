"""Every Redis key streamreco writes, named in one place.

Per-user keys hold the user id in a hash tag (``{u:...}``) so that, on a Redis
Cluster, all of one user's keys live on one shard.

>>> keys = Keys("sr")
>>> keys.profile("42"), keys.neighbours("i7")
('sr:{u:42}:profile', 'sr:co:i7')
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Key names under one namespace prefix."""

    namespace: str = "sr"

    # --- per user (owned by the worker that owns the user's partition) ----------
    def user_prefix(self, user_id: str) -> str:
        return f"{self.namespace}:{{u:{user_id}}}:"

    def profile(self, user_id: str) -> str:
        """History, purchases, factors and last list shown: one msgpack blob."""
        return f"{self.user_prefix(user_id)}profile"

    def latest(self, user_id: str) -> str:
        """The last published recommendation list, as its JSON."""
        return f"{self.user_prefix(user_id)}latest"

    def of_user(self, user_id: str) -> list[str]:
        """Every key held about one user: what forgetting the user deletes.

        Named, not matched by prefix: a user id may contain ``}:``, so one user's
        prefix can begin another user's keys.

        >>> Keys("sr").of_user("bob")
        ['sr:{u:bob}:profile', 'sr:{u:bob}:latest']
        """
        return [self.profile(user_id), self.latest(user_id)]

    def applied_offsets(self, topic: str) -> str:
        """Highest offset applied to the state, per partition of ``topic``: member -> offset.

        Written in the same transaction as the state, so a redelivered message is
        recognised and not applied twice.
        """
        return f"{self.namespace}:offsets:{topic}"

    def applied_at(self, topic: str) -> str:
        """When each partition's applied offset was written, Unix seconds: member -> time."""
        return f"{self.namespace}:offsets-at:{topic}"

    # --- per item and global (shared by all workers, updated by increments) ------
    def item(self, item_id: str) -> str:
        """Catalogue features of an item, as JSON."""
        return f"{self.namespace}:item:{item_id}"

    def item_vector(self, item_id: str) -> str:
        return f"{self.namespace}:iv:{item_id}"

    def factor_items(self) -> str:
        """Items that have factors, by interaction count (the factor model's pool)."""
        return f"{self.namespace}:mf:items"

    def neighbours(self, item_id: str) -> str:
        """Co-occurrence row: items seen together with ``item_id``."""
        return f"{self.namespace}:co:{item_id}"

    def transitions(self, item_id: str) -> str:
        """Items interacted with right after ``item_id``."""
        return f"{self.namespace}:tr:{item_id}"

    def counts(self) -> str:
        """Interactions per item, all time."""
        return f"{self.namespace}:counts"

    def first_items(self) -> str:
        """Items as new users' first interaction: how many began with each."""
        return f"{self.namespace}:first"

    def popularity(self, period: int | None) -> str:
        """Time-decayed popularity in one decay period (``None``: no decay)."""
        return f"{self.namespace}:pop" if period is None else f"{self.namespace}:pop:{period}"

    def popularity_clock(self) -> str:
        """The latest decay period popularity was learned in, as ASCII digits."""
        return f"{self.namespace}:pop:clock"

    def reusable(self, key: str) -> bool:
        """Whether a worker may read ``key`` once and keep it for ``reuse_seconds`` (see
        :class:`~streamreco.store.BatchStore`).

        Item-level model state that only event batches change, by increments (the worker
        applies its own to what it keeps), and the new arrivals, where a catalogue
        change showing a few seconds late only delays a new item's first showing.
        Availability (a business rule, read fresh) and per-user state may not.

        >>> keys = Keys("sr")
        >>> [keys.reusable(key) for key in (keys.neighbours("i7"), keys.new_items(), keys.unavailable())]
        [True, True, False]
        """
        ns = self.namespace
        return key.startswith((f"{ns}:co:", f"{ns}:tr:", f"{ns}:pop:")) or key in {
            self.counts(), self.first_items(), self.popularity(None), self.factor_items(), self.new_items()
        }

    def unavailable(self) -> str:
        """Items out of stock or deleted: member -> since when."""
        return f"{self.namespace}:unavailable"

    def new_items(self) -> str:
        """Recently created items: member -> created_at."""
        return f"{self.namespace}:new"
