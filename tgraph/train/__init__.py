"""Training: options, negative samplers, the trainer, the recipe, checkpoints and seeding
(the losses are part of the model contract: :mod:`tgraph.models.losses`)."""

from tgraph.train.checkpoint import load_checkpoint, save_checkpoint
from tgraph.train.config import SamplingConfig, TrainConfig
from tgraph.train.negatives import (
    NegativeSampler,
    PopularitySampler,
    SpatialSampler,
    make_sampler,
)
from tgraph.train.seed import seed_everything
from tgraph.train.trainer import Trainer

__all__ = [
    "NegativeSampler",
    "PopularitySampler",
    "SamplingConfig",
    "SpatialSampler",
    "TrainConfig",
    "Trainer",
    "load_checkpoint",
    "make_sampler",
    "save_checkpoint",
    "seed_everything",
]
