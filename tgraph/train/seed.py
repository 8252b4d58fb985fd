"""One seed for every random number generator a run uses."""

from __future__ import annotations

import os
import random

import dgl
import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python's ``random``, numpy's global generator, torch (CPU and CUDA) and DGL.

    ``deterministic=True`` also asks torch for deterministic kernels (slower on GPU; raises
    where an operation has no deterministic implementation).
    """
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    dgl.seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
