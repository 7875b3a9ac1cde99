"""The layer-wise action: every layer moves its own learning rate by one of a few factors.

One discrete choice per layer, e.g. factors (0.5, 1, 2) = halve / keep / double that layer's lr,
clipped to [low, high]. The run starts with every layer at `start_lr` (null: the base optimizer's
configured lr, so an all-keep policy is exactly the constant-lr baseline). The gym-level space is
MultiDiscrete (one entry per layer); each agent of the layer VecEnv sees Discrete(len(factors)).
Only the `lr` of each layer's param group changes; the optimizer's state is never touched.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from rlopt.env.actions import StateInBank
from rlopt.errors import UserError

LAYER_KIND = "layer_lr"
BASE_OPTIMIZERS = ("adam", "sgd")


class LayerLrActions(StateInBank):
    kind = LAYER_KIND

    def __init__(self, cfg, optim_cfg, n_layers: int):
        self.optimizer = str(cfg.optimizer)
        if self.optimizer not in BASE_OPTIMIZERS:
            raise UserError(f"controller.actions.optimizer={self.optimizer} is not allowed: use {' or '.join(BASE_OPTIMIZERS)}")
        self.optimizers = [self.optimizer]
        self.factors = [float(f) for f in cfg.factors]
        if len(self.factors) < 2 or min(self.factors) <= 0:
            raise UserError(f"controller.actions.factors={self.factors} is not allowed: give at least two factors, all > 0")
        self.low, self.high = float(cfg.low), float(cfg.high)
        if not 0 < self.low < self.high:
            raise UserError(f"controller.actions.low/high=({self.low}, {self.high}) are not allowed: need 0 < low < high")
        start = cfg.start_lr
        self.start_lr = float(optim_cfg[self.optimizer].lr if start is None else start)
        if not self.low <= self.start_lr <= self.high:
            origin = f"optim.{self.optimizer}.lr" if start is None else "controller.actions.start_lr"
            raise UserError(f"controller.actions.start_lr: the starting lr {self.start_lr} ({origin}) is outside "
                            f"[low, high] = [{self.low}, {self.high}]; set controller.actions.start_lr, low or high")
        self.keep = self.factors.index(1.0) if 1.0 in self.factors else None
        self.n_layers = int(n_layers)
        self.n_discrete = len(self.factors)
        self.space = gym.spaces.MultiDiscrete([len(self.factors)] * self.n_layers)
        self.agent_space = gym.spaces.Discrete(len(self.factors))

    def reset(self, bank) -> None:
        bank.select(self.optimizer)
        bank.set_lr(self.start_lr)

    def apply(self, action, bank) -> None:
        choice = np.asarray(action, dtype=np.int64).reshape(-1)
        if choice.shape != (self.n_layers,):
            raise ValueError(f"a layer-wise action needs one choice per layer ({self.n_layers}), got shape {choice.shape}")
        scale = np.asarray(self.factors)[choice]
        bank.set_lrs(np.clip(np.asarray(bank.lrs) * scale, self.low, self.high).tolist())
