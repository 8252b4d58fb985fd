"""Training: losses, negative samplers, the trainer, checkpoints and seeding."""

from tgraph.train.checkpoint import load_checkpoint, save_checkpoint
from tgraph.train.losses import bpr_loss, full_ce_loss, loss_from_scores, sampled_softmax_loss
from tgraph.train.negatives import (
    NegativeSampler,
    PopularitySampler,
    SpatialSampler,
    make_sampler,
)
from tgraph.train.seed import seed_everything
from tgraph.train.trainer import TrainConfig, Trainer

__all__ = [
    "NegativeSampler",
    "PopularitySampler",
    "SpatialSampler",
    "TrainConfig",
    "Trainer",
    "bpr_loss",
    "full_ce_loss",
    "load_checkpoint",
    "loss_from_scores",
    "make_sampler",
    "sampled_softmax_loss",
    "save_checkpoint",
    "seed_everything",
]
