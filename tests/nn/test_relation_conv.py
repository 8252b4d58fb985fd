"""RelationConv against a dense per-relation computation on a hand-built heterograph."""

import dgl
import pytest
import torch

from tgraph.nn import RelationConv

INTERACTS = ("user", "interacts", "item")
REV = ("item", "rev_interacts", "user")
TRANSITION = ("item", "transition", "item")


def tiny_graph() -> dgl.DGLGraph:
    """3 users, 4 items; user 0 visits item 1 twice (a multi-edge); item 3 has no
    in-neighbour over ``transition`` and user 2 no interaction at all."""
    interacts = (torch.tensor([0, 0, 0, 1, 1]), torch.tensor([0, 1, 1, 1, 2]))
    transition = (torch.tensor([0, 1, 2, 0]), torch.tensor([1, 2, 0, 2]))
    return dgl.heterograph(
        {INTERACTS: interacts, REV: interacts[::-1], TRANSITION: transition},
        num_nodes_dict={"user": 3, "item": 4},
    )


def dense(graph: dgl.DGLGraph, etype) -> torch.Tensor:
    """``[N_dst, N_src]`` edge counts of one relation."""
    u, v = graph.edges(etype=etype)
    out = torch.zeros(graph.num_nodes(etype[2]), graph.num_nodes(etype[0]))
    out.index_put_((v, u), torch.ones(len(u)), accumulate=True)
    return out


def reference(conv: RelationConv, graph, feats, norm: str, self_loop: bool):
    out = {}
    for nt in conv.ntypes:
        if self_loop:
            out[nt] = feats[nt] @ conv.self_weight[nt].weight.T + conv.self_weight[nt].bias
        else:
            out[nt] = torch.zeros(graph.num_nodes(nt), conv.out_dim)
    for et in conv.etypes:
        a = dense(graph, et)
        d_in, d_out = a.sum(1).clamp(min=1), a.sum(0).clamp(min=1)
        if norm == "right":
            a = a / d_in[:, None]
        elif norm == "both":
            a = a / d_in[:, None].sqrt() / d_out[None, :].sqrt()
        w = conv.rel_weight[":".join(et)].weight
        out[et[2]] = out[et[2]] + a @ feats[et[0]] @ w.T
    return out


@pytest.mark.parametrize("norm", ["right", "both", "none"])
@pytest.mark.parametrize("self_loop", [True, False])
def test_equals_dense_computation(norm, self_loop):
    torch.manual_seed(0)
    graph = tiny_graph()
    feats = {"user": torch.randn(3, 5), "item": torch.randn(4, 5)}
    conv = RelationConv(5, 3, ["user", "item"], graph.canonical_etypes, norm, self_loop)
    out = conv(graph, feats)
    expected = reference(conv, graph, feats, norm, self_loop)
    assert set(out) == {"user", "item"}
    for nt in out:
        assert out[nt].shape == (graph.num_nodes(nt), 3)
        torch.testing.assert_close(out[nt], expected[nt])
    assert all(not graph.nodes[nt].data for nt in graph.ntypes)  # local scope: nothing left


def test_mean_by_hand_and_isolated_nodes():
    """With identity weights and no self term, ``right`` norm is the neighbour mean."""
    graph = tiny_graph()
    conv = RelationConv(2, 2, ["item"], [INTERACTS], norm="right", self_loop=False)
    with torch.no_grad():
        conv.rel_weight["user:interacts:item"].weight.copy_(torch.eye(2))
    users = torch.tensor([[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
    out = conv(graph, {"user": users, "item": torch.zeros(4, 2)})["item"]
    # item 0 <- u0; item 1 <- u0, u0, u1; item 2 <- u1; item 3 <- nobody
    expected = torch.tensor([[1.0, 0.0], [2 / 3, 2 / 3], [0.0, 2.0], [0.0, 0.0]])
    torch.testing.assert_close(out, expected)


def test_only_listed_relations_are_used():
    graph = tiny_graph()
    feats = {"user": torch.randn(3, 4), "item": torch.randn(4, 4)}
    torch.manual_seed(1)
    conv = RelationConv(4, 4, ["user", "item"], [INTERACTS, REV])
    before = conv(graph, feats)["item"]
    changed = dgl.remove_edges(graph, torch.tensor([0, 1]), etype=TRANSITION)
    torch.testing.assert_close(conv(changed, feats)["item"], before)
    assert "user:interacts:item" in conv.rel_weight and len(conv.rel_weight) == 2


def test_gradients_reach_every_parameter():
    graph = tiny_graph()
    feats = {nt: torch.randn(graph.num_nodes(nt), 4, requires_grad=True) for nt in graph.ntypes}
    conv = RelationConv(4, 4, graph.ntypes, graph.canonical_etypes, norm="both")
    out = conv(graph, feats)
    (out["user"].sum() + out["item"].pow(2).sum()).backward()
    for name, param in conv.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert all(f.grad.abs().sum() > 0 for f in feats.values())


def test_bad_arguments():
    with pytest.raises(ValueError, match="norm"):
        RelationConv(2, 2, ["item"], [INTERACTS], norm="sym")
    with pytest.raises(ValueError, match="not listed"):
        RelationConv(2, 2, ["item"], [REV])
