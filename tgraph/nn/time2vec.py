"""Time2Vec (Kazemi et al., 2019), GETNext's encoding of the time of day."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Time2Vec(nn.Module):
    r"""A scalar :math:`\tau` (GETNext: the time of day as a fraction of the day) as ``dim``
    features, one linear and ``dim - 1`` periodic:

    .. math::
        \mathrm{t2v}(\tau)_0 = \omega_0 \tau + \varphi_0, \qquad
        \mathrm{t2v}(\tau)_k = \sin(\omega_k \tau + \varphi_k), \quad 1 \le k < \mathrm{dim}.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim < 2:
            raise ValueError(f"Time2Vec needs dim >= 2, got {dim}")
        self.dim = dim
        self.weight = nn.Parameter(torch.empty(dim))
        self.bias = nn.Parameter(torch.empty(dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.uniform_(self.weight, -1.0, 1.0)
        nn.init.uniform_(self.bias, -1.0, 1.0)

    def forward(self, tau: Tensor) -> Tensor:
        """``tau [...]`` -> ``[..., dim]``."""
        z = tau.unsqueeze(-1) * self.weight + self.bias
        return torch.cat([z[..., :1], torch.sin(z[..., 1:])], dim=-1)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
