"""Adam that updates only the embedding rows a batch touched (``train.sampling.sparse``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import Tensor


class LazyAdam(torch.optim.Optimizer):
    r"""Adam for a mix of dense and sparse gradients, in one optimiser.

    A dense gradient gets torch's Adam update (no AMSGrad, no weight decay). A sparse one (an
    ``nn.Embedding(sparse=True)`` that gathered a batch's rows) updates only the rows it holds,
    as :class:`torch.optim.SparseAdam` does ("lazy Adam"): with :math:`g` the rows' gradient,

    .. math::
        m_r \leftarrow \beta_1 m_r + (1 - \beta_1) g, \quad
        v_r \leftarrow \beta_2 v_r + (1 - \beta_2) g^2, \quad
        \theta_r \leftarrow \theta_r - \frac{\eta}{1 - \beta_1^k}
            \frac{m_r}{\sqrt{v_r} / \sqrt{1 - \beta_2^k} + \epsilon},

    with :math:`k` the parameter's step count. Rows outside the batch keep their value and
    their moments: a step costs the rows touched, not the whole table. Dense Adam would
    instead decay every row's moments and move every row that has momentum, so the two differ
    after the first step (they agree on it: untouched rows start with zero moments).
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        if lr <= 0 or eps <= 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"LazyAdam: lr and eps must be > 0 and betas in [0, 1): {lr, betas}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                k = state["step"]
                step_size = group["lr"] / (1 - beta1**k)
                root_bc2 = math.sqrt(1 - beta2**k)
                m, v = state["exp_avg"], state["exp_avg_sq"]
                if p.grad.is_sparse:
                    grad = p.grad.coalesce()
                    rows, values = grad.indices()[0], grad.values()
                    m_r = m[rows].mul_(beta1).add_(values, alpha=1 - beta1)
                    v_r = v[rows].mul_(beta2).addcmul_(values, values, value=1 - beta2)
                    m[rows], v[rows] = m_r, v_r
                    denom = v_r.sqrt().div_(root_bc2).add_(group["eps"])
                    p.index_add_(0, rows, m_r.div(denom).mul_(-step_size))
                else:
                    m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                    v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                    denom = v.sqrt().div_(root_bc2).add_(group["eps"])
                    p.addcdiv_(m, denom, value=-step_size)
        return loss
