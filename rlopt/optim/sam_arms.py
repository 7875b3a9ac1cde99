"""SAM variants from pytorch-optimizer as arms of the bank, stepped the way rlopt's trainer steps SAM.

rlopt's trainer computes the gradient at w itself, then calls `step(closure)`; the closure computes the
gradient at the point the optimizer moved to (with BatchNorm statistics frozen). An optimizer that takes
a closure says so with `takes_closure` and counts what its next steps cost with `grad_evals_next(n)`,
the caller's gradient included: the bank charges that to `grad_evals`, the composite reward's cost and
the reports. rlopt's own SAM (`rlopt.optim.sam`) follows the same protocol.

- `SAM` (package; with `adaptive=True` it is ASAM, Kwon et al. 2021): 2 evaluations per step.
- `LookSAM` (Liu et al. 2022): 2 on the steps that recompute the ascent gradient (every k-th of its
  own steps), 1 otherwise. The package's `step` always calls the closure, so a non-recompute step
  would pay a second evaluation for the gradient at w the caller already has; here it does not.
- `SAMEveryK` (rlopt's SAM, the `sam_every_k` heuristic): a SAM step on every k-th of its own steps, its
  base SGD alone (same momentum buffer) on the others: 2 evaluations on SAM steps, 1 otherwise.
- `GSAM` (Zhuang et al. 2022): 2 per step. The package builds its gradients with a closure over the
  model and takes a base optimizer instance and a rho schedule; here it takes the base optimizer
  class and its arguments like the others, and a constant rho.

Each keeps its own state (LookSAM's kept direction and step count, the base SGD's momentum) in its
state_dict, so switching and resuming keep it as for every optimizer.
"""

from __future__ import annotations

from collections.abc import Callable

import pytorch_optimizer
import torch

from rlopt.optim.sam import SAM as RloptSAM
from rlopt.optim.sam import TwoPass


class SAM(TwoPass, pytorch_optimizer.SAM):
    """pytorch-optimizer's SAM; the `asam` arm sets `adaptive=True`."""


def _every_k(step: int, n_steps: int, k: int) -> int:
    """How many of the steps step, ..., step + n_steps - 1 are multiples of k."""
    return (step + n_steps - 1) // k - (step - 1) // k


class SAMEveryK(RloptSAM):
    """rlopt's SAM on steps 0, k, 2k, ... of its own, its base optimizer alone on the others. The step count
    lives in the param groups, so the state_dict (the base's) carries it across switches and resumes."""

    def __init__(self, params, base: type[torch.optim.Optimizer], rho: float = 0.05, k: int = 2, **base_kwargs):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k}")
        super().__init__(params, base, rho=rho, **base_kwargs)
        self.k = k
        for group in self.param_groups:
            group.setdefault("sam_every_k_step", 0)

    @property
    def own_step(self) -> int:
        return int(self.param_groups[0]["sam_every_k_step"])

    def grad_evals_next(self, n_steps: int) -> int:
        return n_steps + _every_k(self.own_step, n_steps, self.k)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]):
        step = self.own_step
        loss = super().step(closure) if step % self.k == 0 else self.base.step()
        for group in self.param_groups:
            group["sam_every_k_step"] = step + 1
        return loss


class LookSAM(pytorch_optimizer.LookSAM):
    """pytorch-optimizer's LookSAM, with the closure (the second evaluation) called on recompute steps only."""

    takes_closure = True

    def grad_evals_next(self, n_steps: int) -> int:
        """n steps from its own step count s: one evaluation each, plus one per step i in [s, s+n) with i % k == 0."""
        return n_steps + _every_k(int(self.get_step()), n_steps, self.k)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]):
        if self.get_step() % self.k == 0:
            self.first_step(zero_grad=True)
            with torch.enable_grad():
                closure()
        self.second_step()


class GSAM(TwoPass, pytorch_optimizer.GSAM):
    """pytorch-optimizer's GSAM with a base optimizer class (built over the same param groups) and constant rho."""

    def __init__(self, params, base_optimizer: type[torch.optim.Optimizer], rho: float = 0.05, alpha: float = 0.4,
                 adaptive: bool = False, perturb_eps: float = 1e-12, **base_kwargs):
        if rho <= 0:
            raise ValueError(f"rho must be positive, got {rho}")
        self.rho = float(rho)  # read by update_rho_t, which the package's __init__ calls
        base = base_optimizer(params, **base_kwargs)
        super().__init__(base.param_groups, base, model=None, rho_scheduler=None, alpha=alpha, adaptive=adaptive,
                         perturb_eps=perturb_eps)

    def update_rho_t(self) -> float:
        self.rho_t = self.rho
        return self.rho_t

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]):
        self.perturb_weights(rho=self.rho_t)  # keeps the caller's gradient at w as old_g
        self.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = closure()
        self.gradient_decompose(self.alpha)
        self.un_perturb()
        self.base_optimizer.step()
        return loss
