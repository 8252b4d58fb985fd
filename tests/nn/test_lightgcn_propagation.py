"""The fused LightGCN propagation and its hand-written backward against dense autograd."""

import dgl
import pytest
import torch

import tgraph.models as models
from tests.models.helpers import random_split
from tgraph.data.queries import Queries
from tgraph.models.base import Batch
from tgraph.models.bprmf import l2_rows
from tgraph.models.losses import loss_from_scores
from tgraph.nn.lightgcn_conv import LightGCNConv, LightGCNPropagation, symmetric_norm


def _directed_graph() -> dgl.DGLGraph:
    # not symmetric, node 5 isolated, node 4 has in-edges only: the reverse graph matters
    src = torch.tensor([0, 0, 1, 2, 3, 3, 1, 2])
    dst = torch.tensor([2, 3, 3, 0, 0, 1, 4, 4])
    return dgl.graph((src, dst), num_nodes=6)


def _dense_mean(graph: dgl.DGLGraph, feat: torch.Tensor, n_layers: int) -> torch.Tensor:
    adj = torch.zeros(graph.num_nodes(), graph.num_nodes(), dtype=feat.dtype)
    src, dst = graph.edges()
    adj[dst, src] = 1.0
    norm = adj.sum(1).clamp(min=1).rsqrt()[:, None] * adj * adj.sum(0).clamp(min=1).rsqrt()
    layers, h = [feat], feat
    for _ in range(n_layers):
        h = norm @ h
        layers.append(h)
    return torch.stack(layers).mean(0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n_layers", [0, 1, 3])
def test_forward_and_backward_equal_dense_autograd(n_layers, dtype):
    graph = _directed_graph()
    feat = torch.randn(6, 3, dtype=dtype, requires_grad=True)
    rows = torch.tensor([4, 0, 0, 2, 5])  # repeated and isolated rows
    ego_rows = torch.tensor([1, 1, 3])
    out, ego = LightGCNPropagation.apply(feat, graph, n_layers, rows, ego_rows)
    weight_out, weight_ego = torch.randn_like(out), torch.randn_like(ego)
    ((out * weight_out).sum() + (ego * weight_ego).sum()).backward()
    got = feat.grad.clone()
    feat.grad = None
    dense = _dense_mean(graph, feat, n_layers)
    torch.testing.assert_close(out, dense[rows])
    ((dense[rows] * weight_out).sum() + (feat[ego_rows] * weight_ego).sum()).backward()
    torch.testing.assert_close(got, feat.grad)


def test_gradcheck_all_rows():
    feat = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    graph = _directed_graph()
    assert torch.autograd.gradcheck(
        lambda x: LightGCNPropagation.apply(x, graph, 2, None, None)[0], (feat,)
    )


def test_norms_are_pure_and_conv_uses_them():
    """Degrees out (2, 2, 2, 2, 1->clamped, 0->1) and in (2, 1, 1, 2, 2, 0->1) of the fixture;
    nothing is written on the graph, and given norms are used as they are."""
    graph = _directed_graph()
    out_norm, in_norm = symmetric_norm(graph)
    assert out_norm.shape == (6, 1) and in_norm.dtype == torch.float32
    assert not graph.ndata and not graph.edata
    expected = torch.tensor([2, 1, 1, 2, 2, 1], dtype=torch.float64).rsqrt()
    torch.testing.assert_close(symmetric_norm(graph, torch.float64)[1][:, 0], expected)
    torch.testing.assert_close(in_norm[:, 0], expected.float())
    torch.testing.assert_close(out_norm[:, 0], torch.tensor([2, 2, 2, 2, 1, 1]).float().rsqrt())
    feat = torch.randn(6, 3)
    conv = LightGCNConv()
    torch.testing.assert_close(conv(graph, feat), _dense_mean(graph, feat, 1) * 2 - feat)
    torch.testing.assert_close(conv(graph, feat, (out_norm, in_norm)), conv(graph, feat))
    doubled = conv(graph, feat, (out_norm, 2 * in_norm))
    torch.testing.assert_close(doubled, 2 * conv(graph, feat))
    assert not graph.ndata


@pytest.mark.parametrize("name", ["lightgcn", "ngcf"])
def test_models_keep_norms_beside_the_graph_not_on_it(name):
    model = models.get(name)(random_split(), {"n_layers": 2})
    users = torch.tensor([0, 1])
    model.calculate_loss(Batch(Queries(users, users), users, users[:, None])).backward()
    model.eval()
    model.full_sort_predict(Queries(users, users))
    assert set(model.graph.ndata) == {"is_item"}  # what bipartite_graph put there, no more
    torch.testing.assert_close(model.graph_norm[1], symmetric_norm(model.graph)[1])
    assert "out_norm" not in model.state_dict()


@pytest.mark.parametrize("loss", ["bpr", "sampled_softmax", "ce"])
def test_lightgcn_loss_and_gradient_equal_plain_autograd(loss):
    split = random_split()
    model = models.get("lightgcn")(split, {"loss": loss, "n_layers": 2, "reg_weight": 0.1})
    model = model.double()
    users = torch.tensor([0, 1, 2, 2])
    pos = torch.tensor([0, 1, 2, 3])
    neg = None if loss == "ce" else torch.tensor([[5, 6], [7, 8], [9, 3], [4, 4]])
    batch = Batch(Queries(users, users), pos, neg)
    model.calculate_loss(batch).backward()
    got = model.embedding.weight.grad.clone()
    model.embedding.weight.grad = None
    # the same loss written with plain autograd on the dense layer mean
    weight = model.embedding.weight
    final = _dense_mean(model.graph, weight, 2)
    query, item = final[users], final[split.n_users :]
    ego = [weight[users], weight[pos + split.n_users]]
    if loss == "ce":
        scores = query @ item.T
    else:
        scores = torch.einsum("bd,bkd->bk", query, item[torch.cat([pos[:, None], neg], 1)])
        ego.append(weight[neg.flatten() + split.n_users])
    expected = loss_from_scores(loss, scores, pos) + l2_rows(0.1, *ego)
    expected.backward()
    torch.testing.assert_close(got, weight.grad)
