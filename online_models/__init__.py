"""Online recommendation models, all learning one event at a time.

>>> type(build_model(DEFAULT_MODEL)).__name__
'ItemCooccurrence'
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
from streamreco.settings import Settings
from streamreco.store import MemoryStore, Store

__all__ = [
    "Blend",
    "Candidate",
    "DEFAULT_MODEL",
    "ItemCooccurrence",
    "MatrixFactorisation",
    "Popularity",
    "Profile",
    "Recommender",
    "build_model",
    "recommend",
]

MODEL_NAMES = ("blend", "popularity", "cooccurrence", "mf")
#: What a worker runs unless told otherwise (the settings' default).
DEFAULT_MODEL: str = Settings.model_fields["model"].default


def build_model(name: str, store: Store | None = None, namespace: str = "sr") -> Recommender:
    """The model a settings name stands for, its state in ``store``."""
    store = store if store is not None else MemoryStore()
    if name == "popularity":
        return Popularity(store=store, namespace=namespace)
    if name == "cooccurrence":
        return ItemCooccurrence(store=store, namespace=namespace)
    if name == "mf":
        return MatrixFactorisation(store=store, namespace=namespace)
    if name == "blend":
        return Blend(
            [
                ItemCooccurrence(store=store, namespace=namespace),
                Popularity(store=store, namespace=namespace),
            ],
            weights=[1.0, 0.1],
        )
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
