"""Layers: message passing (DGL), encoders, encodings; one layer per file."""

from tgraph.nn.causal_transformer import CausalTransformer
from tgraph.nn.encodings import DistanceEncoding, TimeEncoding, haversine_km
from tgraph.nn.hetero_encoder import HeteroEncoder
from tgraph.nn.lightgcn_conv import LightGCNConv, lightgcn_propagate
from tgraph.nn.ngcf_conv import NGCFConv
from tgraph.nn.relation_conv import RelationConv
from tgraph.nn.temporal_attention import TemporalAttentionConv
from tgraph.nn.time2vec import Time2Vec
from tgraph.nn.trajectory_flow_conv import TrajectoryFlowConv
from tgraph.nn.transition_attention import TransitionAttentionMap

__all__ = [
    "CausalTransformer",
    "DistanceEncoding",
    "HeteroEncoder",
    "LightGCNConv",
    "NGCFConv",
    "RelationConv",
    "TemporalAttentionConv",
    "Time2Vec",
    "TimeEncoding",
    "TrajectoryFlowConv",
    "TransitionAttentionMap",
    "haversine_km",
    "lightgcn_propagate",
]
