import math

import dgl
import pytest
import torch

from tgraph.nn.temporal_attention import TemporalAttentionConv

# items (source) -> users (destination); users are queried at QUERY_TIME
QUERY_TIME = torch.tensor([10, 20, 5])
# e0..e6: e2 is at the query time and e3, e5, e6 after it (inadmissible); item 2 and item 3
# reach users only through inadmissible edges; user 2 has no admissible edge
SRC = [0, 1, 2, 3, 1, 3, 0]
DST = [0, 0, 0, 0, 1, 1, 2]
EDGE_TIME = torch.tensor([3, 7, 10, 15, 19, 25, 6])
VALID = torch.tensor([True, True, False, False, True, False, False])


def bipartite(src=SRC, dst=DST) -> dgl.DGLGraph:
    return dgl.heterograph(
        {
            ("item", "to", "user"): (
                torch.tensor(src, dtype=torch.long),
                torch.tensor(dst, dtype=torch.long),
            )
        },
        num_nodes_dict={"item": 4, "user": 3},
    )


def features(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(4, 5, generator=gen), torch.randn(3, 3, generator=gen)


def layer(**kw) -> TemporalAttentionConv:
    torch.manual_seed(0)
    return TemporalAttentionConv((5, 3), 6, **{"num_heads": 2, "time_feats": 4, **kw}).eval()


def test_future_edges_get_zero_attention_and_past_ones_sum_to_one():
    conv = layer()
    out, alpha = conv(bipartite(), features(), QUERY_TIME, EDGE_TIME, get_attention=True)
    assert out.shape == (3, 6) and alpha.shape == (7, 2)
    assert torch.equal(alpha[~VALID], torch.zeros(4, 2))
    assert torch.allclose(alpha[0] + alpha[1], torch.ones(2))
    assert torch.allclose(alpha[4], torch.ones(2))
    assert (alpha[VALID] > 0).all()


def test_not_strict_admits_the_edges_at_the_query_time_only():
    """``strict=False``: e2 (at the query time) joins; e3, e5, e6 (after it) stay out."""
    conv = layer()
    _, alpha = conv(
        bipartite(), features(), QUERY_TIME, EDGE_TIME, get_attention=True, strict=False
    )
    at = VALID.clone()
    at[2] = True
    assert torch.equal(alpha[~at], torch.zeros(3, 2)) and (alpha[at] > 0).all()
    assert torch.allclose(alpha[[0, 1, 2]].sum(0), torch.ones(2))
    _, strict = conv(bipartite(), features(), QUERY_TIME, EDGE_TIME, get_attention=True)
    assert torch.equal(strict[2], torch.zeros(2))


def test_future_edges_never_influence_the_output():
    conv = layer()
    items, users = features()
    out = conv(bipartite(), (items, users), QUERY_TIME, EDGE_TIME)
    changed = items.clone()
    changed[2:] = 100 * torch.randn(2, 5)  # items seen only through inadmissible edges
    later = EDGE_TIME.clone()
    later[[3, 5, 6]] += 1000  # still after the query time
    assert torch.equal(conv(bipartite(), (changed, users), QUERY_TIME, later), out)
    kept = torch.nonzero(VALID).squeeze(1).tolist()
    pruned = bipartite([SRC[e] for e in kept], [DST[e] for e in kept])
    assert torch.allclose(conv(pruned, (items, users), QUERY_TIME, EDGE_TIME[kept]), out, atol=1e-6)


def test_no_gradient_flows_through_future_edges():
    conv = layer()
    items, users = features()
    items.requires_grad_(True)
    conv(bipartite(), (items, users), QUERY_TIME, EDGE_TIME).sum().backward()
    assert torch.equal(items.grad[2:], torch.zeros(2, 5))
    assert items.grad[:2].abs().sum() > 0


def test_node_without_past_edges_gets_zero_aggregation():
    conv = layer()
    items, users = features()
    out = conv(bipartite(), (items, users), QUERY_TIME, EDGE_TIME)
    expected = conv.merge(torch.cat([torch.zeros(1, 6), users[2:]], -1))
    assert torch.allclose(out[2:], expected, atol=1e-6)
    empty = bipartite([], [])
    no_edges = conv(empty, (items, users), QUERY_TIME, EDGE_TIME[:0])
    assert torch.allclose(no_edges, conv.merge(torch.cat([torch.zeros(3, 6), users], -1)))


def test_one_head_output_equals_dense_computation():
    conv = layer(num_heads=1)
    with torch.no_grad():  # a non-trivial phase, so that Phi(0) is not all ones
        conv.time_enc.phase.uniform_(-1, 1)
    items, users = features(1)
    out = conv(bipartite(), (items, users), QUERY_TIME, EDGE_TIME)

    def phi(dt: float) -> torch.Tensor:
        return torch.cos(dt * conv.time_enc.omega + conv.time_enc.phase)

    dim = 6
    w_q = conv.fc_q.weight
    w_kv = torch.cat([conv.fc_kv_src.weight, conv.fc_kv_edge.weight], dim=1)  # acts on z_e
    w_k, w_v = w_kv[:dim], w_kv[dim:]
    c_k, c_v = conv.fc_kv_edge.bias[:dim], conv.fc_kv_edge.bias[dim:]
    expected = []
    for i in range(3):
        q = w_q @ torch.cat([users[i], phi(0.0)])
        agg = torch.zeros(dim)
        edges = [e for e in range(7) if DST[e] == i and EDGE_TIME[e] < QUERY_TIME[i]]
        if edges:
            z = [
                torch.cat([items[SRC[e]], phi(float(QUERY_TIME[i] - EDGE_TIME[e]))]) for e in edges
            ]
            keys = torch.stack([w_k @ z_e + c_k for z_e in z])
            values = torch.stack([w_v @ z_e + c_v for z_e in z])
            alpha = torch.softmax(keys @ q / math.sqrt(dim), 0)
            agg = alpha @ values
        expected.append(conv.merge(torch.cat([agg, users[i]])))
    assert torch.allclose(out, torch.stack(expected), atol=1e-5)


def test_edge_features_block_input_and_dropout_modes():
    torch.manual_seed(0)
    conv = TemporalAttentionConv(5, 8, num_heads=2, edge_feats=2, attn_drop=0.5)
    block = dgl.create_block((torch.tensor([0, 1, 2]), torch.tensor([0, 0, 1])), 3, 2)
    feat = torch.randn(3, 5)  # one tensor: the first 2 source nodes are the destinations
    edge_feat, t_edge, t_query = torch.randn(3, 2), torch.tensor([1, 2, 3]), torch.tensor([5, 5])
    conv.eval()
    first = conv(block, feat, t_query, t_edge, edge_feat)
    assert first.shape == (2, 8)
    assert torch.equal(conv(block, feat, t_query, t_edge, edge_feat), first)
    conv.train()
    torch.manual_seed(1)
    assert not torch.allclose(conv(block, feat, t_query, t_edge, edge_feat), first)
    with pytest.raises(ValueError, match="edge_feats=2"):
        conv(block, feat, t_query, t_edge)
    with pytest.raises(ValueError, match="divisible"):
        TemporalAttentionConv(5, 8, num_heads=3)
