"""Per-layer observations for the layer-wise env: the run's global state plus each layer's own.

Row i of an observation is layer i's (agent i's) view. Global features come from
`features.FEATURES` and are the same on every row (train and validation loss, validation
accuracy, the fraction of the budget used, ...); local ones come from `LAYER_FEATURES`: the
layer's weight norm, the norm of its last gradient, their ratio (the LARS trust ratio), its
learning rate and its relative depth. Norms and the lr enter as log10 so that layers of very
different sizes give numbers on one scale, and depth is relative (0 = first layer, 1 = last) so
that one policy serves networks of any depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from rlopt.env.features import BOUND, FEATURES, TrainingState, bounded
from rlopt.errors import UserError

LOG_FLOOR = 1e-12  # a zero norm (no gradient yet) reads as log10 = -12, not -inf


@dataclass
class LayerState:
    weight_norm: float
    grad_norm: float  # of the last batch's gradient; 0 before the first step
    lr: float
    depth: float  # 0 = first layer .. 1 = last layer


def _log10(x: float) -> float:
    return math.log10(max(x, LOG_FLOOR)) if math.isfinite(x) else x


LAYER_FEATURES = {
    "layer_log10_weight_norm": lambda s: _log10(s.weight_norm),
    "layer_log10_grad_norm": lambda s: _log10(s.grad_norm),
    "layer_log10_trust_ratio": lambda s: _log10(s.weight_norm) - _log10(s.grad_norm),
    "layer_log10_lr": lambda s: _log10(s.lr),
    "layer_depth": lambda s: s.depth,
}


class LayerFeatureSet:
    """Turns the training state and the layers' states into a (layers, features) observation."""

    def __init__(self, names, n_layers: int):
        self.names = list(names or [])
        unknown = [n for n in self.names if n not in FEATURES and n not in LAYER_FEATURES]
        if unknown or not self.names:
            raise UserError(
                f"env.features={self.names} is not allowed: unknown {unknown}; global: {', '.join(FEATURES)}; "
                f"per layer: {', '.join(LAYER_FEATURES)}"
            )
        self.agent_space = gym.spaces.Box(-BOUND, BOUND, shape=(len(self.names),), dtype=np.float32)
        self.space = gym.spaces.Box(-BOUND, BOUND, shape=(n_layers, len(self.names)), dtype=np.float32)

    def __call__(self, state: TrainingState, layers: list[LayerState]) -> np.ndarray:
        return bounded([
            [LAYER_FEATURES[n](layer) if n in LAYER_FEATURES else FEATURES[n](state) for n in self.names]
            for layer in layers
        ])
