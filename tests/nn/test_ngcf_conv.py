"""NGCFConv against a dense computation of the paper's matrix form."""

import dgl
import torch
import torch.nn.functional as F

from tgraph.nn import NGCFConv


def _graph() -> dgl.DGLGraph:
    # directed (in- and out-degrees differ), node 4 isolated
    src = torch.tensor([0, 0, 1, 2, 3, 3, 1])
    dst = torch.tensor([2, 3, 3, 0, 0, 1, 2])
    return dgl.graph((src, dst), num_nodes=5)


def _dense(graph: dgl.DGLGraph, conv: NGCFConv, feat: torch.Tensor) -> torch.Tensor:
    n = graph.num_nodes()
    adj = torch.zeros(n, n, dtype=feat.dtype)
    src, dst = graph.edges()
    adj[dst, src] = 1.0  # row = destination
    d_in, d_out = adj.sum(1).clamp(min=1), adj.sum(0).clamp(min=1)
    lap = d_in.rsqrt()[:, None] * adj * d_out.rsqrt()[None, :]
    w1, b, w2 = conv.W1.weight, conv.W1.bias, conv.W2.weight
    # (L + I) H W1 + (L H ⊙ H) W2, then LeakyReLU(0.2); edge-wise bi-interaction sum
    bi = torch.stack([(lap[i, :, None] * (feat * feat[i])).sum(0) for i in range(n)])
    out = (lap + torch.eye(n, dtype=feat.dtype)) @ feat @ w1.T + b + bi @ w2.T
    return F.leaky_relu(out, 0.2)


def test_equals_dense_computation_and_shapes():
    torch.manual_seed(0)
    graph = _graph()
    conv = NGCFConv(3, 4).double()
    with torch.no_grad():
        conv.W1.bias.normal_()
    feat = torch.randn(5, 3, dtype=torch.float64)
    out = conv(graph, feat)
    assert out.shape == (5, 4)
    torch.testing.assert_close(out, _dense(graph, conv, feat))
    # the isolated node sees only its own features: LeakyReLU(W1 h + b + W2 0)
    torch.testing.assert_close(out[4], F.leaky_relu(conv.W1(feat[4]), 0.2))
    assert not {"h", "m"} & set(graph.ndata)  # local scope: no leftover features


def test_gradients_reach_weights_and_input():
    torch.manual_seed(0)
    conv = NGCFConv(3, 2)
    feat = torch.randn(5, 3, requires_grad=True)
    conv(_graph(), feat).pow(2).sum().backward()
    for grad in (conv.W1.weight.grad, conv.W1.bias.grad, conv.W2.weight.grad, feat.grad):
        assert grad is not None and grad.abs().sum() > 0


def test_message_dropout_only_in_training():
    torch.manual_seed(0)
    conv = NGCFConv(3, 8, dropout=0.5, bias=False)
    assert conv.W1.bias is None
    feat = torch.randn(5, 3)
    graph = _graph()
    conv.eval()
    clean = conv(graph, feat)
    torch.testing.assert_close(conv(graph, feat), clean)
    conv.train()
    dropped = conv(graph, feat)
    zeroed = dropped == 0
    assert zeroed.any() and not zeroed.all()
    torch.testing.assert_close(dropped[~zeroed], 2 * clean[~zeroed])  # kept values scaled 1/(1-p)
