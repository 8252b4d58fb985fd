"""Message-passing layers (DGL)."""

from tgraph.nn.lightgcn_conv import LightGCNConv, lightgcn_propagate
from tgraph.nn.relation_conv import RelationConv

__all__ = ["LightGCNConv", "RelationConv", "lightgcn_propagate"]
