"""tgraph: temporal heterogeneous graphs and GNN recommenders for spatio-temporal data."""

import os
import warnings

from tgraph import threads as _threads

# OpenMP threads sleep instead of spinning while they wait (before torch loads; a user's
# OMP_WAIT_POLICY is kept): see tgraph.threads.
_threads.configure()
# DGL prints a backend notice on first import unless the backend is set explicitly.
os.environ.setdefault("DGLBACKEND", "pytorch")
# DGL's DataLoader emits this on every CPU run; it is advice, not a problem.
warnings.filterwarnings("ignore", message="Dataloader CPU affinity opt is not enabled")

__version__ = "0.1.0"
