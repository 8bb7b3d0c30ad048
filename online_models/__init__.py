"""Online recommendation models, all learning one event at a time.

>>> model = build_model("blend")
>>> type(model).__name__, [type(m).__name__ for m in model.models]
('Blend', ['ItemCooccurrence', 'Popularity'])
"""

from __future__ import annotations

from online_models.base import Candidate, Recommender
from online_models.blend import Blend
from online_models.cooccurrence import ItemCooccurrence
from online_models.mf import MatrixFactorisation
from online_models.popularity import Popularity
from online_models.profile import Profile
from online_models.ranking import recommend
from streamreco.store import MemoryStore, Store

__all__ = [
    "Blend",
    "Candidate",
    "ItemCooccurrence",
    "MatrixFactorisation",
    "Popularity",
    "Profile",
    "Recommender",
    "build_model",
    "recommend",
]

MODEL_NAMES = ("blend", "popularity", "cooccurrence", "mf")


def build_model(name: str, store: Store | None = None, namespace: str = "sr") -> Recommender:
    """The model a settings name stands for, its state in ``store``."""
    store = store if store is not None else MemoryStore()
    if name == "popularity":
        return Popularity(store=store, namespace=namespace)
    if name == "cooccurrence":
        return ItemCooccurrence(store=store, namespace=namespace)
    if name == "mf":
        return MatrixFactorisation(store=store, namespace=namespace)
    if name == "blend":  # the default; its settings were tuned on the first half of MovieLens
        return Blend(
            [
                ItemCooccurrence(store=store, namespace=namespace),
                Popularity(store=store, namespace=namespace),
            ],
            weights=[1.0, 0.1],
        )
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
