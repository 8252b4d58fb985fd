"""Message-passing layers (DGL)."""

from tgraph.nn.lightgcn_conv import LightGCNConv, lightgcn_propagate

__all__ = ["LightGCNConv", "lightgcn_propagate"]
