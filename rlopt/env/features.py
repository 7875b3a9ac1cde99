"""Observation features: each a named function of the training state, composed by config.

The default is the report's 8-dim state for three optimizers: val_acc, val_loss/2, dAcc, dLoss,
epoch fraction and a one-hot of the previous action. With a continuous action space (`lr_absolute`)
`prev_action` is the previous action itself (its normalised value; 0 before the first), so the
default features serve every controller.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from rlopt.errors import UserError

BOUND = 1e6  # observations are clipped here; NaN (a diverged run) maps to the bound


@dataclass
class TrainingState:
    val_loss: float
    prev_val_loss: float
    val_acc: float | None
    prev_val_acc: float | None
    train_loss: float
    grad_norm: float
    lr: float
    best_val_loss: float
    progress: float  # fraction of the budget used, 0..1
    epochs_left: float
    prev_action: int | float | None  # an index into a discrete action space, or a continuous action's value


def _previous_action(state: TrainingState, n: int, continuous: bool) -> list[float]:
    """A one-hot of the previous discrete action, or the previous continuous action's value (n = 1)."""
    if continuous:
        return [float(state.prev_action or 0.0)]
    out = [0.0] * n
    if state.prev_action is not None:
        out[state.prev_action] = 1.0
    return out


FEATURES: dict[str, Callable[[TrainingState], float]] = {
    "val_acc": lambda s: s.val_acc or 0.0,
    "val_loss": lambda s: s.val_loss,
    "half_val_loss": lambda s: s.val_loss / 2,
    "d_acc": lambda s: (s.val_acc or 0.0) - (s.prev_val_acc or 0.0),
    "d_loss": lambda s: s.val_loss - s.prev_val_loss,
    "epoch_frac": lambda s: s.progress,
    "train_loss": lambda s: s.train_loss,
    "grad_norm": lambda s: s.grad_norm,
    "log10_lr": lambda s: math.log10(s.lr) if s.lr > 0 else -BOUND,
    "best_val_loss": lambda s: s.best_val_loss,
    "epochs_left": lambda s: s.epochs_left,
}
VECTOR_FEATURES = {"prev_action"}  # one entry per discrete action (one value for a continuous one)


class FeatureSet:
    """Turns a `TrainingState` into the observation vector named by `env.features`."""

    def __init__(self, names, n_actions: int):
        """`n_actions`: the number of discrete actions, 0 for a (one-dimensional) continuous action space."""
        self.names = list(names)
        unknown = [n for n in self.names if n not in FEATURES and n not in VECTOR_FEATURES]
        if unknown or not self.names:
            raise UserError(
                f"env.features={self.names} is not allowed: unknown {unknown}; "
                f"available: {', '.join(sorted([*FEATURES, *VECTOR_FEATURES]))}"
            )
        self.continuous = n_actions == 0
        self.n_actions = 1 if self.continuous else n_actions
        dim = sum(self.n_actions if n in VECTOR_FEATURES else 1 for n in self.names)
        self.space = gym.spaces.Box(-BOUND, BOUND, shape=(dim,), dtype=np.float32)

    def __call__(self, state: TrainingState) -> np.ndarray:
        values: list[float] = []
        for name in self.names:
            if name == "prev_action":
                values += _previous_action(state, self.n_actions, self.continuous)
            else:
                values.append(FEATURES[name](state))
        return bounded(values)


def bounded(values) -> np.ndarray:
    """Observation values (a list, or a list of lists) as float32 within +-BOUND, NaN (a diverged run) mapped to
    the bound. Plain Python per value: a population concludes K observations a step, and numpy's calls cost more
    than these few values."""
    return np.array(_clamped(values), dtype=np.float32)


def _clamped(values: list) -> list:
    return [_clamped(v) if isinstance(v, list) else BOUND if v != v else min(max(float(v), -BOUND), BOUND)
            for v in values]
