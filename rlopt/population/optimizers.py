"""Optimizers for K members at once: each member's parameters are one row of a (K, P) tensor.

The update rules are torch.optim's (SGD with momentum, weight decay and Nesterov; Adam with L2 weight
decay; AdamW's decoupled decay) and rlopt.optim.sam's SAM over SGD, written as a handful of tensor ops
over the whole population, with every hyperparameter a per-member (K, 1) column (`configure` sets one
member's: members may train different Tasks, each with its own `optim` settings). `step(params, grads,
rows)` updates only the members in the boolean mask `rows`; the others' weights and state stay as they
were bit for bit (a member that did not step this round, or one whose run has ended).

Rounding differs from torch's fused CPU kernels (which compute the scalars in float64 and fuse the
multiply-adds), at the level of float32's last bit per step; tests/test_population.py bounds what that
does to a run.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch

from rlopt.errors import UserError

BATCHED = ("sgd", "sam", "adam", "adamw")


def _column(values, k: int, device, dtype=torch.float32) -> torch.Tensor:
    return torch.as_tensor(values, dtype=dtype, device=device).expand(k).clone().reshape(k, 1)


def _lr_column(lr, k: int) -> np.ndarray:
    """`lr`: one for all members, or one each. Learning rates are kept in float64, as the single run's param
    groups keep them (Python floats), so a multiplicative lr action compounds the same; each step uses them
    rounded to float32. They live on the host (a NumPy (K, 1) column): an agent reads and sets one member's
    every decision, which on a tensor costs microseconds per access on the CPU and a device sync on a GPU; a
    step takes the column as a tensor (`_lr_tensor`: no copy on the CPU)."""
    return np.broadcast_to(np.asarray(lr, dtype=np.float64).reshape(-1, 1), (k, 1)).copy()


def _lr_tensor(lr: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(lr).to(device)


class BatchedSGD:
    """torch.optim.SGD (dampening 0): d = g + wd w; buf = d on a member's first step, then m buf + d;
    w -= lr (d + m buf if nesterov else buf)."""

    grad_evals_per_step = 1

    def __init__(self, k: int, n_params: int, device, lr: float, momentum: float, weight_decay: float,
                 nesterov: bool):
        self.lr = _lr_column(lr, k)
        self.momentum, self.weight_decay = _column(momentum, k, device), _column(weight_decay, k, device)
        self.nesterov = _column(bool(nesterov), k, device, torch.bool)
        self.has_momentum = _column(bool(momentum), k, device, torch.bool)
        self.n_params, self.device = n_params, device
        self.buf = torch.zeros(k, n_params, device=device) if momentum else None
        self.started = torch.zeros(k, 1, dtype=torch.bool, device=device)
        self._flags()

    def _flags(self) -> None:
        """Which terms a step needs, as Python bools (no device sync per step): every member with momentum
        (else the others' update is their plain d), any with Nesterov."""
        self.all_momentum, self.any_nesterov = bool(self.has_momentum.all()), bool(self.nesterov.any())

    def configure(self, k: int, lr: float, momentum: float, weight_decay: float, nesterov: bool) -> None:
        """Member k's hyperparameters (its Task's `optim.sgd`), for its next run."""
        self.lr[k], self.momentum[k], self.weight_decay[k] = lr, momentum, weight_decay
        self.nesterov[k], self.has_momentum[k] = bool(nesterov), bool(momentum)
        if momentum and self.buf is None:
            self.buf = torch.zeros(len(self.lr), self.n_params, device=self.device)
        self._flags()

    @torch.no_grad()
    def step(self, params: torch.Tensor, grads: torch.Tensor, rows: torch.Tensor, every: bool = False) -> None:
        """`every`: all rows step (the usual case), so nothing needs masking. A member without momentum steps
        with d, as torch's SGD without momentum does (no buffer)."""
        rows = rows.reshape(-1, 1)
        d = grads + self.weight_decay * params
        if self.buf is not None:
            buf = torch.where(self.started, self.momentum * self.buf + d, d)
            self.buf.copy_(buf if every else torch.where(rows, buf, self.buf))
            moved = torch.where(self.nesterov, d + self.momentum * buf, buf) if self.any_nesterov else buf
            d = moved if self.all_momentum else torch.where(self.has_momentum, moved, d)
            self.started |= rows
        update = params - _lr_tensor(self.lr, self.device).float() * d
        params.copy_(update if every else torch.where(rows, update, params))

    def reset_member(self, k: int) -> None:
        self.started[k] = False
        if self.buf is not None:
            self.buf[k] = 0

    def state_dict(self) -> dict:
        return {"lr": self.lr.copy(), "buf": None if self.buf is None else self.buf.clone(),
                "started": self.started.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.lr[:] = np.asarray(state["lr"])
        self.started.copy_(state["started"])
        self.buf = None if state["buf"] is None else state["buf"].clone()


class BatchedSAM(BatchedSGD):
    """SAM over SGD (rlopt.optim.sam): the population trainer takes the second gradient at w + rho g/||g||
    for the members that step with it, then this SGD steps from w with that gradient."""

    grad_evals_per_step = 2

    def __init__(self, k: int, n_params: int, device, rho: float, **sgd):
        super().__init__(k, n_params, device, **sgd)
        self.rho = _column(rho, k, device)

    def configure(self, k: int, rho: float, **sgd) -> None:
        super().configure(k, **sgd)
        self.rho[k] = rho

    def ascent(self, grads: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """What each member in `rows` adds to its weights for the second gradient (zero for the others)."""
        norm = torch.linalg.vector_norm(grads, dim=1, keepdim=True)
        return torch.where(rows.reshape(-1, 1), grads * (self.rho / (norm + 1e-12)), 0.0)


class BatchedAdam:
    """torch.optim.Adam (amsgrad off), or AdamW with `decoupled`: m, v moving averages with bias correction
    by each member's own step count."""

    grad_evals_per_step = 1

    def __init__(self, k: int, n_params: int, device, lr: float, betas, weight_decay: float,
                 eps: float = inspect.signature(torch.optim.Adam).parameters["eps"].default, decoupled: bool = False):
        self.lr = _lr_column(lr, k)
        self.device = device
        self.beta1, self.beta2 = _column(betas[0], k, device), _column(betas[1], k, device)
        self.weight_decay, self.eps = _column(weight_decay, k, device), _column(eps, k, device)
        self.decoupled = decoupled
        self.any_weight_decay = bool(weight_decay)  # else a step skips the term (a Python bool: no sync per step)
        self.m = torch.zeros(k, n_params, device=device)
        self.v = torch.zeros(k, n_params, device=device)
        self.steps = torch.zeros(k, 1, dtype=torch.float64, device=device)
        self._buffers: tuple[torch.Tensor, torch.Tensor] | None = None

    def configure(self, k: int, lr: float, betas, weight_decay: float,
                  eps: float = inspect.signature(torch.optim.Adam).parameters["eps"].default) -> None:
        """Member k's hyperparameters (its Task's `optim.adam` / `optim.adamw`), for its next run."""
        self.lr[k], self.beta1[k], self.beta2[k] = lr, betas[0], betas[1]
        self.weight_decay[k], self.eps[k] = weight_decay, eps
        self.any_weight_decay = bool(self.weight_decay.any())

    @torch.no_grad()
    def step(self, params: torch.Tensor, grads: torch.Tensor, rows: torch.Tensor, every: bool = False) -> None:
        """`every`: all rows step (the usual case), so weights and state are updated in place without masking,
        in as few passes over the (K, P) tensors as the arithmetic allows (the step is memory-bound)."""
        rows = rows.reshape(-1, 1)
        lr = _lr_tensor(self.lr, self.device)
        steps = self.steps + rows.double()
        bias1 = 1 - self.beta1.double() ** steps
        bias2_sqrt = (1 - self.beta2.double() ** steps).sqrt().float()
        step_size = (lr / bias1).float()
        self.steps.copy_(steps)
        if every:
            if self.decoupled and self.any_weight_decay:
                params.mul_(1 - lr.float() * self.weight_decay)
            elif self.any_weight_decay:
                grads = grads + self.weight_decay * params
            scaled, denom = self._scratch()
            self.m.lerp_(grads, 1 - self.beta1)
            self.v.mul_(self.beta2).addcmul_(grads, torch.mul(grads, 1 - self.beta2, out=scaled))
            torch.sqrt(self.v, out=denom).div_(bias2_sqrt).add_(self.eps)
            params.addcdiv_(torch.mul(self.m, -step_size, out=scaled), denom)
            return
        if self.decoupled:
            start = params * (1 - lr.float() * self.weight_decay)
        else:
            start, grads = params, grads + self.weight_decay * params
        m = torch.lerp(self.m, grads, 1 - self.beta1)
        v = self.beta2 * self.v + (1 - self.beta2) * grads * grads
        update = start - step_size * m / (v.sqrt() / bias2_sqrt + self.eps)
        self.m.copy_(torch.where(rows, m, self.m))
        self.v.copy_(torch.where(rows, v, self.v))
        params.copy_(torch.where(rows, update, params))

    def _scratch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Two (K, P) buffers the step writes its intermediates into, allocated once: a fresh tensor of this size
        per op costs the allocator's page faults, which on a CPU took longer than the op's arithmetic
        (BENCHMARKS.md, MNIST MLP population)."""
        if self._buffers is None:
            self._buffers = (torch.empty_like(self.m), torch.empty_like(self.m))
        return self._buffers

    def reset_member(self, k: int) -> None:
        self.m[k], self.v[k], self.steps[k] = 0, 0, 0

    def state_dict(self) -> dict:
        return {"lr": self.lr.copy(), "m": self.m.clone(), "v": self.v.clone(), "steps": self.steps.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.lr[:] = np.asarray(state["lr"])
        for name in ("m", "v", "steps"):
            getattr(self, name).copy_(state[name])


def settings(name: str, optim_cfg) -> dict:
    """The hyperparameters of the batched optimizer `name` in `optim_cfg` (`optim.sam`'s SGD settings are
    `optim.sgd`'s unless set apart), as its constructor and `configure` take them."""
    if name not in BATCHED:
        raise UserError(f"optimizer {name} is not allowed in population mode (controller.vectorize=population): "
                        f"it batches {', '.join(BATCHED)}; use controller.vectorize=processes for the others")
    if name in ("sgd", "sam"):
        s = optim_cfg[name]
        sgd = dict(lr=float(s.lr), momentum=float(s.momentum), weight_decay=float(s.weight_decay),
                   nesterov=bool(s.nesterov))
        return sgd if name == "sgd" else dict(rho=float(s.rho), **sgd)
    a = optim_cfg[name]
    eps = {"eps": float(a.eps)} if "eps" in a else {}  # else torch's default, as the single-run optimizer has it
    return dict(lr=float(a.lr), betas=tuple(float(b) for b in a.betas), weight_decay=float(a.weight_decay), **eps)


def build_batched(name: str, optim_cfg, k: int, n_params: int, device):
    """The batched optimizer `name`, every member with the `optim.<name>` settings of `optim_cfg`."""
    values = settings(name, optim_cfg)
    if name == "sgd":
        return BatchedSGD(k, n_params, device, **values)
    if name == "sam":
        return BatchedSAM(k, n_params, device, **values)
    return BatchedAdam(k, n_params, device, decoupled=name == "adamw", **values)
