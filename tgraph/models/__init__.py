"""Models: the :class:`Recommender` contract, the registry and the baselines."""

# importing the model modules registers them
from tgraph.models import (  # noqa: F401
    bprmf,
    flagship,
    flashback,
    getnext,
    gru4rec,
    hetero_gnn,
    lightgcn,
    markov,
    ngcf,
    popular,
    revisit,
    sasrec,
    sthgcn,
    tgat,
)
from tgraph.models.base import Batch, EmbeddingRecommender, ModelConfig, Recommender
from tgraph.models.registry import get, list_models, register

__all__ = [
    "Batch",
    "EmbeddingRecommender",
    "ModelConfig",
    "Recommender",
    "get",
    "list_models",
    "register",
]
