"""The optimizer bank: every optimizer a controller may pick, built once over the same parameters.

Switching optimizers never resets state: SGD's momentum buffers, Adam's moments, Prodigy's and
D-Adaptation's step-size estimate `d` (kept in their param groups) and a schedule-free optimizer's
`z` sequence and averaging weights stay in their own optimizer while another one steps, and are used
again when it is picked again.

Schedule-free optimizers (Defazio et al., 2024) train at one point (y) and are evaluated at another
(x, the average). The bank keeps one invariant: outside `training()`, the model's parameters hold the
evaluation point, so validation, test, the best-checkpoint copy and every checkpoint see x (the
package's README asks for eval mode when checkpointing). `training()` puts the active schedule-free
optimizer in train mode (parameters = y) for the optimizer steps, and back to eval mode after.

What switching means for a schedule-free optimizer: another optimizer steps from x, the weights the
run evaluates (so it continues from what was validated, not from the extrapolated y). When the
schedule-free optimizer is picked again, the weights that optimizer left are its new x; its own
`train()` then interpolates towards its kept z (y = beta * x + (1 - beta) * z) and its average resumes
with the averaging weight it had reached. Nothing is reset, as for the other optimizers.
"""

from __future__ import annotations

import statistics
from contextlib import contextmanager

import dadaptation
import prodigyopt
import schedulefree
import torch
from omegaconf import OmegaConf

from rlopt.errors import UserError
from rlopt.optim.sam import SAM

TORCH_OPTIMIZERS = ("sgd", "sam", "adam", "adadelta")
# lr is a multiplier of the step size the optimizer estimates (its `d`); 1.0 is the package default
MULTIPLIER_LR = ("prodigy", "dadapt_adam", "dadapt_sgd")
SCHEDULE_FREE = ("schedulefree_adamw", "schedulefree_sgd")
OPTIMIZERS = (*TORCH_OPTIMIZERS, *MULTIPLIER_LR, *SCHEDULE_FREE)

# name -> the package's class; its keyword arguments are the keys of `optim.<name>` (less RLOPT_KEYS)
PACKAGE_OPTIMIZERS = {
    "prodigy": prodigyopt.Prodigy,
    "dadapt_adam": dadaptation.DAdaptAdam,
    "dadapt_sgd": dadaptation.DAdaptSGD,
    "schedulefree_adamw": schedulefree.AdamWScheduleFree,
    "schedulefree_sgd": schedulefree.SGDScheduleFree,
}
# keys of `optim.<name>` that are rlopt's, not the package's
RLOPT_KEYS = {"bn_batches"}


def _fast_kwargs(device: torch.device) -> dict:
    """Fused kernels on CUDA and CPU (one kernel for all parameters: a small_cnn SGD step 0.45 -> 0.16 ms,
    Adam 1.1 -> 0.38 ms on the 2-core CPU), foreach on other devices."""
    return {"fused": True} if device.type in ("cuda", "cpu") else {"foreach": True}


def _sgd_kwargs(cfg) -> dict:
    return dict(lr=float(cfg.sgd.lr), momentum=float(cfg.sgd.momentum),
                weight_decay=float(cfg.sgd.weight_decay), nesterov=bool(cfg.sgd.nesterov))


def _package_optimizer(name: str, params, cfg) -> torch.optim.Optimizer:
    """One of the package optimizers with `optim.<name>` as its keyword arguments (lists become tuples: betas)."""
    if name not in cfg:
        raise UserError(f"optim.{name} is missing: the settings of optimizer {name} (see conf/train.yaml)")
    settings = OmegaConf.to_container(cfg[name], resolve=True)
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items() if k not in RLOPT_KEYS}
    try:
        return PACKAGE_OPTIMIZERS[name](params, **kwargs)
    except (TypeError, ValueError) as err:
        raise UserError(f"optim.{name} is not allowed: {PACKAGE_OPTIMIZERS[name].__name__} refuses it ({err})") from None


def build_optimizer(name: str, params, cfg, device: torch.device) -> torch.optim.Optimizer:
    """Build optimizer `name` from the `optim` config block."""
    if name == "sgd":
        opt = torch.optim.SGD(params, **_sgd_kwargs(cfg), **_fast_kwargs(device))
    elif name == "sam":
        opt = SAM(params, torch.optim.SGD, rho=float(cfg.sam.rho), **_sgd_kwargs(cfg), **_fast_kwargs(device))
    elif name == "adam":
        opt = torch.optim.Adam(params, lr=float(cfg.adam.lr), betas=tuple(cfg.adam.betas),
                               weight_decay=float(cfg.adam.weight_decay), **_fast_kwargs(device))
    elif name == "adadelta":
        opt = torch.optim.Adadelta(params, lr=float(cfg.adadelta.lr), rho=float(cfg.adadelta.rho),
                                   weight_decay=float(cfg.adadelta.weight_decay), foreach=True)
    elif name in PACKAGE_OPTIMIZERS:
        opt = _package_optimizer(name, params, cfg)
    else:
        raise UserError(f"optimizer '{name}' is unknown; available: {', '.join(OPTIMIZERS)}")
    return opt


class OptimizerBank:
    """Named optimizers over one model; `current` is the one that steps."""

    def __init__(self, param_groups_fn, names, cfg, device: torch.device):
        self.names = list(names)
        self.optimizers = {n: build_optimizer(n, param_groups_fn(), cfg, device) for n in self.names}
        self.active = self.names[0]
        self.bn_batches = {n: int(cfg[n].get("bn_batches", 0)) for n in self.names if n in SCHEDULE_FREE}

    def select(self, name: str) -> None:
        self.active = name

    @property
    def current(self) -> torch.optim.Optimizer:
        return self.optimizers[self.active]

    @property
    def is_schedule_free(self) -> bool:
        return self.active in SCHEDULE_FREE

    @contextmanager
    def training(self):
        """Optimizer steps happen inside: a schedule-free optimizer moves the parameters to its training
        point y on entry and back to its evaluation point x on exit (see the module docstring)."""
        opt = self.current if self.is_schedule_free else None
        if opt is not None:
            opt.train()
        try:
            yield
        finally:
            if opt is not None:
                opt.eval()

    @property
    def bn_recompute_batches(self) -> int:
        """Training batches to recompute BatchNorm statistics at x over, before evaluating weights a
        schedule-free optimizer has just moved (its README: the running statistics were gathered at y)."""
        return self.bn_batches.get(self.active, 0)

    @property
    def grad_evals_per_step(self) -> int:
        """Gradient evaluations per optimizer step: 2 for SAM, 1 for every other optimizer of the bank
        (Prodigy, D-Adaptation and schedule-free compute their step from the one gradient)."""
        return getattr(self.current, "grad_evals_per_step", 1)

    @property
    def lrs(self) -> list[float]:
        """The current optimizer's `lr` per param group (one group per layer in layer-wise runs): for
        Prodigy and D-Adaptation the multiplier of their estimated step size."""
        return [float(group["lr"]) for group in self.current.param_groups]

    @property
    def lr(self) -> float:
        """The learning rate: the median over param groups, which is the one lr when all groups share it."""
        return float(statistics.median(self.lrs))

    def set_lr(self, lr: float) -> None:
        """Set the learning rate of every param group of the current optimizer (state untouched)."""
        self.set_lrs([lr] * len(self.current.param_groups))

    def set_lrs(self, lrs) -> None:
        """Set one learning rate per param group of the current optimizer (state untouched)."""
        groups = self.current.param_groups
        if len(lrs) != len(groups):
            raise ValueError(f"{len(lrs)} learning rates for {len(groups)} param groups")
        for group, lr in zip(groups, lrs):
            group["lr"] = float(lr)

    def state_dict(self) -> dict:
        return {"active": self.active, "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.active = state["active"]
        for name, opt_state in state["optimizers"].items():
            self.optimizers[name].load_state_dict(opt_state)
