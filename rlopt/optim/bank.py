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

Each optimizer is a node `optim.<name>` (conf/optim/<name>.yaml): its `_target_` class and that class's
keyword arguments, plus the few keys rlopt reads itself (`rlopt.schema.OptimizerConfig`). Whether an
optimizer is schedule-free is read from the object (`train()`/`eval()`), what its steps cost from the
SAM family's protocol (`rlopt.optim.sam.TwoPass`): nothing here names an optimizer.
"""

from __future__ import annotations

import dataclasses
import statistics
from contextlib import contextmanager

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlopt.errors import UserError
from rlopt.schema import OptimizerConfig

RLOPT_KEYS = tuple(f.name for f in dataclasses.fields(OptimizerConfig))  # the node's keys rlopt reads itself


def _node(name: str, optim_cfg) -> tuple[OptimizerConfig, dict]:
    """Optimizer node `optim.<name>` split into rlopt's typed keys and the class's keyword arguments."""
    if name not in optim_cfg:
        raise UserError(f"optimizer {name} is unknown; available: {', '.join(optim_cfg)} (optim.<name>: conf/optim/)")
    spec = OmegaConf.to_container(optim_cfg[name], resolve=True)
    if "_target_" not in spec:
        raise UserError(f"optim.{name}._target_ is missing: the optimizer's class (a config written before the bank's "
                        f"nodes moved to conf/optim/ lacks it; add it as in conf/optim/{name}.yaml)")
    try:
        own = OmegaConf.to_object(OmegaConf.merge(OptimizerConfig, {k: spec.pop(k) for k in RLOPT_KEYS if k in spec}))
    except OmegaConfBaseException as err:
        raise UserError(f"optim.{name}.{err.key}={err.value} is not allowed: {str(err.msg).splitlines()[0]}") from None
    return own, spec


def optimizer_settings(name: str, optim_cfg) -> OptimizerConfig:
    """What rlopt reads of optimizer `name`'s node (whether its lr is a multiplier, BatchNorm batches)."""
    return _node(name, optim_cfg)[0]


def _build(name: str, params, optim_cfg) -> tuple[OptimizerConfig, torch.optim.Optimizer]:
    """The node's class over `params`, with its keyword arguments (lists become tuples, as torch's `betas`;
    a nested `_target_` node, SAM's base optimizer class, is built first)."""
    own, spec = _node(name, optim_cfg)
    try:
        kwargs = {k: instantiate(v) if isinstance(v, dict) and "_target_" in v else tuple(v) if isinstance(v, list) else v
                  for k, v in spec.items()}
        return own, get_class(own._target_)(params, **kwargs)
    except (ImportError, InstantiationException) as err:
        reason = str(err).splitlines()[0]
        raise UserError(f"optim.{name} cannot be built: a class it names cannot be imported ({reason})") from None
    except (TypeError, ValueError) as err:
        raise UserError(f"optim.{name} is not allowed: {own._target_.rpartition('.')[2]} refuses it ({err})") from None


def build_optimizer(name: str, params, optim_cfg) -> torch.optim.Optimizer:
    """Build optimizer `name` from its node `optim.<name>`: its `_target_` class with the node's other keys."""
    return _build(name, params, optim_cfg)[1]


def is_schedule_free(opt: torch.optim.Optimizer) -> bool:
    """Schedule-free optimizers (the schedulefree package's API) move the weights between train() and eval()."""
    return callable(getattr(opt, "train", None)) and callable(getattr(opt, "eval", None))


class OptimizerBank:
    """Named optimizers over one model; `current` is the one that steps."""

    def __init__(self, param_groups_fn, names, optim_cfg):
        self.names = list(names)
        built = {n: _build(n, param_groups_fn(), optim_cfg) for n in self.names}
        self.settings = {n: own for n, (own, _) in built.items()}
        self.optimizers = {n: opt for n, (_, opt) in built.items()}
        self.schedule_free = {n for n, opt in self.optimizers.items() if is_schedule_free(opt)}
        self.active = self.names[0]

    def select(self, name: str) -> None:
        self.active = name

    @property
    def current(self) -> torch.optim.Optimizer:
        return self.optimizers[self.active]

    @property
    def is_schedule_free(self) -> bool:
        return self.active in self.schedule_free

    @property
    def lr_is_multiplier(self) -> bool:
        """Whether the current optimizer's lr multiplies a step size it estimates (Prodigy, D-Adaptation)."""
        return self.settings[self.active].lr_is_multiplier

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
        return self.settings[self.active].bn_batches if self.is_schedule_free else 0

    @property
    def takes_closure(self) -> bool:
        """Whether the current optimizer's step evaluates more gradients through a closure (the SAM family)."""
        return getattr(self.current, "takes_closure", False)

    def grad_evals(self, n_steps: int) -> int:
        """Gradient evaluations the current optimizer's next `n_steps` steps cost: 1 per step, except the SAM
        family's (2 per step; LookSAM 2 on the steps that recompute its ascent, 1 otherwise). Prodigy,
        D-Adaptation and schedule-free compute their step from the one gradient."""
        return self.current.grad_evals_next(n_steps) if self.takes_closure else n_steps

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
