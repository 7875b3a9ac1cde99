"""Action spaces: what one decision of a controller changes in the training run.

- `optimizer`: pick the optimizer for the next step from `choices` (Discrete).
- `lr_grid`: move the learning rate one point down / keep / one point up a log-spaced grid (Discrete(3)).
- `lr_multiplicative`: multiply the learning rate by 1 - factor, 1 or 1 + factor, clipped to [low, high] (Discrete(3)).
- `lr_grid_index`: jump to any point of the log grid (Discrete(n)), for DQN.
- `lr_absolute`: set log10(lr) directly in [log_low, log_high] (Box, normalised to [-1, 1]), for PPO.

Learning-rate actions change `lr` in the optimizer's param groups and never touch its state. For
Prodigy and D-Adaptation that `lr` is a multiplier of the step size they estimate (1.0 = as estimated),
so their range must contain 1.0; for the schedule-free optimizers it is their learning rate.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from rlopt.errors import UserError
from rlopt.optim.bank import optimizer_settings


class StateInBank:
    """Checkpointing for action spaces whose whole state lives in the optimizer bank (which optimizer
    is active, the learning rates in its param groups): the bank is saved and restored on its own."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Nothing to restore here; see the class docstring."""


class OptimizerChoice(StateInBank):
    kind = "optimizer"

    def __init__(self, choices):
        self.choices = list(choices)
        self.optimizers = self.choices
        self.labels = self.choices
        self.space = gym.spaces.Discrete(len(self.choices))
        self.n_discrete = len(self.choices)

    def check_optimizers(self, optim_cfg) -> None:
        """Each choice must be an optimizer of the bank (a node of `optim`)."""
        if not self.choices or any(c not in optim_cfg for c in self.choices):
            raise UserError(f"controller.actions.choices={self.choices} is not allowed: "
                            f"each must be one of {', '.join(optim_cfg)}")

    def reset(self, bank) -> None:
        bank.select(self.choices[0])


    def apply(self, action, bank) -> None:
        bank.select(self.choices[int(action)])


class _LearningRate(StateInBank):
    """Shared by the learning-rate spaces: one base optimizer whose lr the controller moves.

    The optimizer is built once per episode; its param groups' `lr` is overwritten in place, so
    Adam's moments or SGD's momentum buffers carry on across every move.
    """

    initial_lr: float
    labels: list[str] | None = None  # names of the discrete actions, for the summary's action_counts

    def __init__(self, cfg):
        self.optimizer = str(cfg.optimizer)
        self.optimizers = [self.optimizer]
        self.lr_range: tuple[float, float, str, str] = (0.0, 0.0, "", "")  # (low, high, its keys, as shown): set by record_range

    def record_range(self, low: float, high: float, keys: str, shown: str) -> None:
        """Record the lr range, checked against the optimizer in `check_optimizers`."""
        self.lr_range = (low, high, keys, shown)

    def check_optimizers(self, optim_cfg) -> None:
        """The optimizer must be one of the bank's; a range that leaves out 1.0 is refused for an optimizer
        whose lr multiplies its own estimate."""
        if self.optimizer not in optim_cfg:
            raise UserError(f"controller.actions.optimizer={self.optimizer} is not allowed: use one of {', '.join(optim_cfg)}")
        low, high, keys, shown = self.lr_range
        if optimizer_settings(self.optimizer, optim_cfg).lr_is_multiplier and not low <= 1.0 <= high:
            raise UserError(f"controller.actions.{keys}={shown} is not allowed with {self.optimizer}: its lr multiplies "
                            f"the step size it estimates (1.0 = as estimated), so the range must contain 1.0")

    def reset(self, bank) -> None:
        bank.select(self.optimizer)
        bank.set_lr(self.initial_lr)



class _OnGrid(_LearningRate):
    """A log-spaced grid of `n` learning rates from `low` to `high`; episodes start at point `start`."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.low, self.high = float(cfg.low), float(cfg.high)
        if not 0 < self.low < self.high:
            raise UserError(f"controller.actions.low/high=({self.low}, {self.high}) are not allowed: need 0 < low < high")
        self.record_range(self.low, self.high, "low/high", f"({self.low}, {self.high})")
        self.n_points = int(cfg.n)
        if self.n_points < 2:
            raise UserError(f"controller.actions.n={self.n_points} is not allowed: the grid needs at least 2 points")
        self.grid = np.logspace(np.log10(self.low), np.log10(self.high), self.n_points)
        start = cfg.start
        self.start = self.n_points // 2 if start is None else int(start)
        if not 0 <= self.start < self.n_points:
            raise UserError(f"controller.actions.start={start} is not allowed: use 0..{self.n_points - 1} (an index on the grid)")
        self.initial_lr = float(self.grid[self.start])
        self.index = self.start

    def reset(self, bank) -> None:
        self.index = self.start
        super().reset(bank)

    def state_dict(self) -> dict:
        return {"index": self.index}

    def load_state_dict(self, state: dict) -> None:
        self.index = state["index"]


class LrGrid(_OnGrid):
    """0 = one grid point down, 1 = keep, 2 = one point up; the ends of the grid clip."""

    kind = "lr_grid"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.space = gym.spaces.Discrete(3)
        self.n_discrete = 3
        self.labels = ["down", "keep", "up"]

    def apply(self, action, bank) -> None:
        self.index = int(np.clip(self.index + int(action) - 1, 0, self.n_points - 1))
        bank.set_lr(self.grid[self.index])


class LrGridIndex(_OnGrid):
    """Action i sets the learning rate to grid point i: the absolute learning rate for DQN."""

    kind = "lr_grid_index"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.space = gym.spaces.Discrete(self.n_points)
        self.n_discrete = self.n_points
        self.labels = [f"lr={lr:.3g}" for lr in self.grid]

    def apply(self, action, bank) -> None:
        self.index = int(action)
        bank.set_lr(self.grid[self.index])


class LrMultiplicative(_OnGrid):
    """0 = lr x (1 - factor), 1 = keep, 2 = lr x (1 + factor), clipped to [low, high]; starts at grid point `start`."""

    kind = "lr_multiplicative"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.factor = float(cfg.factor)
        if not 0 < self.factor < 1:
            raise UserError(f"controller.actions.factor={self.factor} is not allowed: use 0 < factor < 1 (0.1 = x0.9 / x1.1)")
        self.scales = (1 - self.factor, 1.0, 1 + self.factor)
        self.space = gym.spaces.Discrete(3)
        self.n_discrete = 3
        self.labels = [f"x{s:g}" for s in self.scales]

    def apply(self, action, bank) -> None:
        bank.set_lr(float(np.clip(bank.lr * self.scales[int(action)], self.low, self.high)))


class LrAbsolute(_LearningRate):
    """log10(lr) in [log_low, log_high], for PPO.

    The agent acts in Box(-1, 1), mapped linearly onto [log_low, log_high]: SB3 asks for a
    symmetric, normalised Box, and a fresh Gaussian policy (mean 0) then starts in the middle of
    the range (1e-3 for [-6, 0]) instead of at its top. Out-of-range actions are clipped.
    """

    kind = "lr_absolute"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.log_low, self.log_high = float(cfg.log_low), float(cfg.log_high)
        if not self.log_low < self.log_high:
            raise UserError(f"controller.actions.log_low/log_high=({self.log_low}, {self.log_high}) are not allowed: "
                            "need log_low < log_high")
        self.record_range(10 ** self.log_low, 10 ** self.log_high, "log_low/log_high", f"({self.log_low}, {self.log_high})")
        self.space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.n_discrete = 0
        self.initial_lr = self.lr_of(0.0)

    def lr_of(self, action) -> float:
        a = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -1.0, 1.0))
        return 10.0 ** (self.log_low + (a + 1) / 2 * (self.log_high - self.log_low))

    def apply(self, action, bank) -> None:
        bank.set_lr(self.lr_of(action))


ACTION_SPACES = {cls.kind: cls for cls in (LrGrid, LrGridIndex, LrMultiplicative, LrAbsolute)}


def build_actions(cfg):
    if cfg.kind == "optimizer":
        return OptimizerChoice(cfg.choices)
    try:
        return ACTION_SPACES[str(cfg.kind)](cfg)
    except KeyError:
        raise UserError(
            f"controller.actions.kind={cfg.kind} is unknown; available: optimizer, {', '.join(ACTION_SPACES)}"
        ) from None


def action_value(action) -> float | int:
    """The action as one number for the metrics CSV; a per-layer action is summarised by its mean index."""
    arr = np.asarray(action).reshape(-1)
    if len(arr) > 1:
        return float(arr.mean())
    return float(arr[0]) if arr.dtype.kind == "f" else int(arr[0])
