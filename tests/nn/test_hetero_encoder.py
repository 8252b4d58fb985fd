"""HeteroEncoder: the layer mean over a heterograph, without touching the caller's graph."""

import dgl
import torch

from tgraph.nn.hetero_encoder import HeteroEncoder


def _graph() -> dgl.DGLGraph:
    return dgl.heterograph(
        {
            ("user", "interacts", "item"): ([0, 1, 1], [1, 0, 2]),
            ("item", "rev_interacts", "user"): ([1, 0, 2], [0, 1, 1]),
            ("item", "in_location", "location"): ([0, 1, 2], [0, 0, 1]),
            ("location", "contains", "item"): ([0, 0, 1], [0, 1, 2]),
        }
    )


def test_outputs_and_zero_layers_is_the_embedding():
    graph = _graph()
    enc = HeteroEncoder(graph, dim=4, n_layers=0, outputs=["user", "item"])
    out = enc(graph)
    assert set(out) == {"user", "item"}
    assert torch.equal(out["item"], enc.embedding["item"])


def test_layer_mean_written_out_and_graph_untouched():
    """Z = (H0 + H1 + H2) / 3 with H_{l+1} = tanh(RelationConv_l(H_l)) (dropout 0)."""
    graph = _graph()
    torch.manual_seed(0)
    enc = HeteroEncoder(graph, dim=3, n_layers=2, outputs=["item"])
    h0 = dict(enc.embedding.items())
    h1 = {nt: torch.tanh(x) for nt, x in enc.layers[0](graph, h0).items()}
    h2 = {nt: torch.tanh(x) for nt, x in enc.layers[1](graph, h1).items()}
    expected = (h0["item"] + h1["item"] + h2["item"]) / 3
    torch.testing.assert_close(enc(graph)["item"], expected)
    assert set(enc.layers[1].ntypes) == {"item"}  # the last layer computes the outputs only
    for ntype in graph.ntypes:
        assert not graph.nodes[ntype].data
    for etype in graph.canonical_etypes:
        assert not graph.edges[etype].data


def test_reset_parameters_and_repr():
    graph = _graph()
    enc = HeteroEncoder(graph, dim=8, n_layers=1, outputs=["user"], init_std=0.5)
    before = {name: p.detach().clone() for name, p in enc.named_parameters()}
    enc.reset_parameters()
    assert all(not torch.equal(before[n], p) for n, p in enc.named_parameters())
    assert "dim=8" in repr(enc) and "n_layers=1" in repr(enc)
