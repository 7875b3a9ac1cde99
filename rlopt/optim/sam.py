"""Sharpness-aware minimisation (Foret et al., 2021) over any base optimizer.

One SAM step: the caller has already run forward/backward at w (the first gradient
evaluation). SAM moves to w + rho * g / ||g||, calls `closure` for the gradient there (the
second evaluation), moves back to w and lets the base optimizer step with that gradient.
Everything is done with foreach kernels over the whole parameter list: no per-parameter
Python loop. BatchNorm handling (statistics from the first pass only) belongs to the caller's
closure, which knows the model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class TwoPass:
    """An optimizer whose `step(closure)` evaluates one more gradient after the caller's: `takes_closure` tells
    the trainer to pass the closure, `grad_evals_next(n)` what n steps cost (see `rlopt.optim.sam_arms`)."""

    takes_closure = True

    def grad_evals_next(self, n_steps: int) -> int:
        return 2 * n_steps


class SAM(TwoPass, torch.optim.Optimizer):

    def __init__(self, params, base: type[torch.optim.Optimizer], rho: float = 0.05, **base_kwargs):
        if rho <= 0:
            raise ValueError(f"rho must be positive, got {rho}")
        super().__init__(params, dict(rho=rho, **base_kwargs))
        self.base = base(self.param_groups, **base_kwargs)
        self.param_groups = self.base.param_groups  # one set of groups: lr changes reach the base
        self.rho = float(rho)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]):
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        if not params:
            return None
        grads = [p.grad for p in params]
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        eps = torch._foreach_mul(grads, self.rho / (norm + 1e-12))
        torch._foreach_add_(params, eps)
        self.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = closure()
        torch._foreach_sub_(params, eps)
        self.base.step()
        return loss

    def state_dict(self):
        return self.base.state_dict()

    def load_state_dict(self, state_dict):
        self.base.load_state_dict(state_dict)
        self.param_groups = self.base.param_groups
