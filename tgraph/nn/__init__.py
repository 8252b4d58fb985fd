"""Message-passing layers (DGL)."""

from tgraph.nn.encodings import DistanceEncoding, TimeEncoding, haversine_km
from tgraph.nn.lightgcn_conv import LightGCNConv, lightgcn_propagate
from tgraph.nn.relation_conv import RelationConv
from tgraph.nn.temporal_attention import TemporalAttentionConv

__all__ = [
    "DistanceEncoding",
    "LightGCNConv",
    "RelationConv",
    "TemporalAttentionConv",
    "TimeEncoding",
    "haversine_km",
    "lightgcn_propagate",
]
