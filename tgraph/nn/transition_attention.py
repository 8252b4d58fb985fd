"""GETNext's POI-candidate transition attention map (Yang et al., SIGIR 2022)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class TransitionAttentionMap(nn.Module):
    r"""The transition attention map :math:`\Phi \in \mathbb{R}^{N \times N}` of GETNext,
    from the POI features ``X`` and the normalised flow matrix :math:`\tilde L`:

    .. math::
        \phi_1 = (X W) a_1, \quad \phi_2 = (X W) a_2, \qquad
        \Phi_{ij} = \mathrm{LeakyReLU}_{0.2}(\phi_{1,i} + \phi_{2,j})\,(\tilde L_{ij} + 1).

    Only the rows of the queries' last POIs are ever needed, so :meth:`forward` returns
    :math:`\Phi_{p, :}` for ``rows`` ``[B]`` (``[B, N]``) without forming the ``N x N``
    matrix: the dense part is a broadcast sum, the :math:`\tilde L` part is gathered from its
    CSR rows (``indptr``, ``indices``, ``values``: the flow graph's normalised rows).
    """

    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.in_dim, self.hidden = in_dim, hidden
        self.proj = nn.Linear(in_dim, hidden, bias=False)
        self.attn = nn.Parameter(torch.empty(2, hidden))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.proj.weight, gain=1.414)
        nn.init.xavier_uniform_(self.attn, gain=1.414)

    def forward(
        self, x: Tensor, rows: Tensor, indptr: Tensor, indices: Tensor, values: Tensor
    ) -> Tensor:
        """``x [N, in_dim]`` POI features, ``rows [B]`` POI codes -> ``[B, N]``."""
        phi = self.proj(x) @ self.attn.T  # [N, 2]
        logits = F.leaky_relu(phi[rows, :1] + phi[:, 1].unsqueeze(0), 0.2)  # [B, N]
        start, end = indptr[rows], indptr[rows + 1]
        length = end - start
        batch_row = torch.repeat_interleave(torch.arange(len(rows), device=x.device), length)
        offset = torch.arange(int(length.sum()), device=x.device) - torch.repeat_interleave(
            torch.cumsum(length, 0) - length, length
        )
        edge = torch.repeat_interleave(start, length) + offset
        scale = torch.ones_like(logits).index_put(
            (batch_row, indices[edge]), values[edge], accumulate=True
        )
        return logits * scale

    def extra_repr(self) -> str:
        return f"{self.in_dim}, hidden={self.hidden}"
