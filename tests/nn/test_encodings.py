import math

import numpy as np
import pytest
import torch

from tgraph.data.geo import KM_PER_DEGREE, haversine
from tgraph.nn.encodings import DistanceEncoding, TimeEncoding, haversine_km


def test_time_encoding_initial_frequencies_are_tgat_geometric():
    enc = TimeEncoding(4)
    expected = torch.tensor([1.0, 1e-3, 1e-6, 1e-9])
    assert torch.allclose(enc.omega, expected, rtol=1e-6)
    assert torch.equal(enc.phase, torch.zeros(4))
    assert {name for name, _ in enc.named_parameters()} == {"omega", "phase"}


def test_time_encoding_values_by_hand():
    enc = TimeEncoding(4)
    out = enc(torch.tensor([0, 1000], dtype=torch.int64))  # integer seconds are accepted
    assert out.shape == (2, 4)
    assert torch.allclose(out[0], torch.ones(4))
    expected = [math.cos(1000.0), math.cos(1.0), math.cos(1e-3), math.cos(1e-6)]
    assert torch.allclose(out[1], torch.tensor(expected), atol=1e-6)
    with torch.no_grad():
        enc.phase.fill_(math.pi / 2)
    assert torch.allclose(enc(torch.zeros(1)), torch.zeros(1, 4), atol=1e-6)  # cos(pi/2) = 0


def test_time_encoding_batch_shape_gradient_and_frozen_variant():
    enc = TimeEncoding(6)
    out = enc(torch.rand(2, 3) * 100)
    assert out.shape == (2, 3, 6)
    out.sum().backward()
    assert enc.omega.grad is not None and enc.omega.grad.abs().sum() > 0
    frozen = TimeEncoding(6, learnable=False)
    assert list(frozen.parameters()) == []
    assert torch.allclose(frozen.omega, enc.omega.detach())
    assert TimeEncoding(1).omega.item() == 1.0
    with pytest.raises(ValueError):
        TimeEncoding(0)


def test_rbf_distance_encoding_by_hand():
    # unit 1 km and max_km = e^2 - 1 put the centres at u = 0, 1, 2 with width 1
    enc = DistanceEncoding(3, kind="rbf", max_km=math.e**2 - 1, unit_km=1.0)
    assert list(enc.parameters()) == []
    km = torch.tensor([0.0, math.e - 1, -5.0])
    out = enc(km)
    h, q = math.exp(-0.5), math.exp(-2.0)
    expected = torch.tensor([[1.0, h, q], [h, 1.0, h], [1.0, h, q]])
    assert torch.allclose(out, expected, atol=1e-6)
    assert enc(torch.rand(2, 5)).shape == (2, 5, 3)
    with pytest.raises(ValueError):
        DistanceEncoding(1, kind="rbf")


def test_rbf_distance_encoding_has_no_subnormals():
    # 32 centres up to 100 km: the Gaussians of centres far from a distance underflow into
    # the subnormal range (CPU matmuls with those are several times slower)
    enc = DistanceEncoding(32)
    km = torch.tensor([0.0, 0.05, 3.0, 99.0, 500.0])
    out = enc(km)
    u = torch.log1p(km / 0.1).unsqueeze(-1)
    exact = torch.exp(-((u - enc.centres) ** 2) / (2 * enc.width**2))
    tiny = torch.finfo(torch.float32).tiny
    assert ((exact > 0) & (exact < tiny)).any()  # the case exists
    assert not ((out > 0) & (out < tiny)).any()
    assert torch.equal(out, torch.where(exact < tiny, torch.zeros_like(exact), exact))


def test_bucket_distance_encoding_by_hand():
    enc = DistanceEncoding(4, kind="bucket", unit_km=0.1, n_buckets=5)
    km = torch.tensor([0.0, 0.05, 0.2, 0.5, 1.0, 2.0, 1000.0, -1.0])
    # buckets in 0.1 km units: [0,1) [1,3) [3,7) [7,15) [15,...) (last one open)
    assert enc.bucket(km).tolist() == [0, 0, 1, 2, 3, 4, 4, 0]
    out = enc(km)
    assert torch.equal(out, enc.embedding.weight[enc.bucket(km)])
    out.sum().backward()
    assert enc.embedding.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        DistanceEncoding(4, kind="linear")


def test_haversine_km_matches_numpy_and_one_degree():
    rng = np.random.default_rng(0)
    lat1, lat2 = rng.uniform(-80, 80, (2, 50))
    lon1, lon2 = rng.uniform(-180, 180, (2, 50))
    expected = haversine(lat1, lon1, lat2, lon2)
    args = [torch.from_numpy(a) for a in (lat1, lon1, lat2, lon2)]
    assert np.allclose(haversine_km(*args).numpy(), expected, rtol=1e-9)
    one = haversine_km(
        *[torch.tensor([v], dtype=torch.float64) for v in (40.0, -74.0, 41.0, -74.0)]
    )
    assert one.item() == pytest.approx(KM_PER_DEGREE, rel=1e-9)
