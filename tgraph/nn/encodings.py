"""Encodings of time gaps and distances, and a torch haversine.

* :class:`TimeEncoding`: TGAT's functional time encoding of a gap ``dt`` (seconds).
* :class:`DistanceEncoding`: a distance ``d`` (km) as Gaussian radial basis functions on a
  log scale (parameter-free) or as a learned embedding of its log bucket.
* :func:`haversine_km`: great-circle distances between coordinate tensors.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from tgraph.data.geo import EARTH_RADIUS_KM


def haversine_km(lat1: Tensor, lon1: Tensor, lat2: Tensor, lon2: Tensor) -> Tensor:
    """Great-circle distance in km between points given in degrees (broadcasts like torch);
    the formula of :func:`tgraph.data.geo.haversine`."""
    phi1, phi2 = torch.deg2rad(lat1), torch.deg2rad(lat2)
    dlam = torch.deg2rad(lon2 - lon1)
    a = (
        torch.sin((phi2 - phi1) / 2) ** 2
        + torch.cos(phi1) * torch.cos(phi2) * torch.sin(dlam / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * torch.asin(torch.sqrt(a.clamp(0.0, 1.0)))


class TimeEncoding(nn.Module):
    r"""TGAT's functional time encoding (Xu et al., ICLR 2020).

    .. math::
        \Phi(\Delta t) = \big[\cos(\omega_1 \Delta t + b_1), \dots,
        \cos(\omega_d \Delta t + b_d)\big], \qquad
        \omega_i = 10^{-\,s\,(i-1)/(d-1)}, \quad b_i = 0 \text{ at initialisation}

    with ``s = max_exponent`` (9, as in the TGAT code), so the periods range from
    :math:`2\pi` to :math:`2\pi \cdot 10^9` units of ``dt`` (seconds). ``omega`` and ``b`` are
    learnable unless ``learnable=False``. The TGAT paper's :math:`\sqrt{1/d}` factor is left
    out, as in its code. Integer gaps are cast to the parameters' dtype.
    """

    def __init__(self, dim: int, learnable: bool = True, max_exponent: float = 9.0) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = dim
        omega = 1.0 / 10 ** torch.linspace(0.0, max_exponent, dim, dtype=torch.float64)
        omega, phase = omega.float(), torch.zeros(dim)
        if learnable:
            self.omega, self.phase = nn.Parameter(omega), nn.Parameter(phase)
        else:
            self.register_buffer("omega", omega)
            self.register_buffer("phase", phase)

    def forward(self, dt: Tensor) -> Tensor:
        """``dt [...]`` -> ``[..., dim]``."""
        dt = dt.to(self.omega.dtype).unsqueeze(-1)
        return torch.cos(dt * self.omega + self.phase)


class DistanceEncoding(nn.Module):
    r"""Encoding of a distance ``d >= 0`` in km; negative inputs are treated as 0.

    With :math:`u(d) = \log(1 + d / \text{unit\_km})`:

    * ``kind="rbf"`` (no parameters): ``dim`` Gaussians evenly spaced in ``u`` from 0 to
      :math:`u_{max} = u(\text{max\_km})`,

      .. math::
          \phi_k(d) = \exp\Big(-\frac{(u(d) - \mu_k)^2}{2\sigma^2}\Big), \quad
          \mu_k = k\,\Delta, \quad \sigma = \Delta = \frac{u_{max}}{\text{dim} - 1},
          \quad k = 0, \dots, \text{dim} - 1;

    * ``kind="bucket"``: a learned ``dim``-vector per log-2 bucket
      :math:`b(d) = \min(\lfloor \log_2(1 + d / \text{unit\_km}) \rfloor, n_{buckets} - 1)`,
      i.e. bucket ``b`` holds :math:`[(2^b - 1), (2^{b+1} - 1))` units (0.1 km units:
      0-0.1, 0.1-0.3, 0.3-0.7, 0.7-1.5 km, ...); the last bucket takes everything beyond.

    RBF values below the smallest normal float are set to 0: centres far from a distance give
    ``exp`` of a large negative number, subnormal floats, which make the CPU's matrix products
    with them (a projection of the encoding and its gradient) several times slower; the change
    is below 1.2e-38 per feature.
    """

    def __init__(
        self,
        dim: int,
        kind: str = "rbf",
        max_km: float = 100.0,
        unit_km: float = 0.1,
        n_buckets: int = 16,
    ) -> None:
        super().__init__()
        if kind not in ("rbf", "bucket"):
            raise ValueError(f"kind must be 'rbf' or 'bucket', got {kind!r}")
        if unit_km <= 0 or max_km <= 0:
            raise ValueError("unit_km and max_km must be positive")
        self.dim, self.kind, self.unit_km = dim, kind, float(unit_km)
        if kind == "rbf":
            if dim < 2:
                raise ValueError(f"the rbf encoding needs dim >= 2, got {dim}")
            self.width = math.log1p(max_km / unit_km) / (dim - 1)
            self.register_buffer("centres", torch.arange(dim, dtype=torch.float32) * self.width)
        else:
            if n_buckets < 1:
                raise ValueError(f"n_buckets must be >= 1, got {n_buckets}")
            self.n_buckets = n_buckets
            self.embedding = nn.Embedding(n_buckets, dim)

    def bucket(self, km: Tensor) -> Tensor:
        """Log-2 bucket index of each distance (``kind="bucket"``)."""
        ratio = km.clamp(min=0.0).to(torch.float64) / self.unit_km
        return torch.floor(torch.log2(1.0 + ratio)).long().clamp(max=self.n_buckets - 1)

    def forward(self, km: Tensor) -> Tensor:
        """``km [...]`` -> ``[..., dim]``."""
        if self.kind == "bucket":
            return self.embedding(self.bucket(km))
        u = torch.log1p(km.to(self.centres.dtype).clamp(min=0.0) / self.unit_km)
        phi = torch.exp(-((u.unsqueeze(-1) - self.centres) ** 2) / (2 * self.width**2))
        return phi.masked_fill(phi < torch.finfo(phi.dtype).tiny, 0.0)
