"""Checkpoints that resume a run exactly: model, optimiser, epoch, trainer state and every
random number generator (python, numpy global, torch CPU/CUDA, the trainer's generator)."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch


def rng_states(generator: np.random.Generator) -> dict[str, Any]:
    states = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "generator": generator.bit_generator.state,
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any], generator: np.random.Generator) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    generator.bit_generator.state = states["generator"]
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    epoch: int,
    generator: np.random.Generator,
    state: dict[str, Any] | None = None,
) -> Path:
    """Write atomically (temporary file, then rename) so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "epoch": epoch,
        "rng": rng_states(generator),
        "state": state or {},
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(
    path: str | os.PathLike,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    generator: np.random.Generator,
) -> dict[str, Any]:
    """Restore everything :func:`save_checkpoint` wrote; returns ``{"epoch", "state"}``."""
    payload = torch.load(path, map_location="cpu", weights_only=False)
    return restore_checkpoint(payload, model=model, optimizer=optimizer, generator=generator)


def restore_checkpoint(
    payload: dict[str, Any],
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    generator: np.random.Generator,
) -> dict[str, Any]:
    """:func:`load_checkpoint` from a checkpoint already read (e.g. sent by another process)."""
    model.load_state_dict(payload["model"])
    if optimizer is not None and payload["optimizer"] is not None:
        optimizer.load_state_dict(payload["optimizer"])
    set_rng_states(payload["rng"], generator)
    return {"epoch": payload["epoch"], "state": payload["state"]}
