"""Gymnasium environments around the training loop, with their observation features and action spaces.

Importing this package registers `rlopt/OptimizerSelection-v0` (and the learning-rate ids) and
`rlopt/LayerwiseLearningRates-v0` with gymnasium, so any RL library can `gymnasium.make` them from
a composed rlopt config. It depends on gymnasium and torch only: the Stable-Baselines3 adapters
live in `rlopt.controllers.sb3_env`.

The environment classes take a `Task` (what is trained, `rlopt.task`) and the control's parts (action
space, observation features, reward) as arguments; `make_env` (also the registered entry point) is the
one place that reads a composed run config into them.
"""

from __future__ import annotations

import gymnasium
import torch

from rlopt.data import DataBundle
from rlopt.env.actions import build_actions
from rlopt.env.features import FeatureSet
from rlopt.env.layer_actions import LAYER_KIND, LayerLrActions
from rlopt.env.layer_features import LayerFeatureSet
from rlopt.env.layerwise_env import LayerwiseTrainingEnv, model_layer_names
from rlopt.env.training_env import TrainingEnv
from rlopt.errors import UserError
from rlopt.rewards import build_reward
from rlopt.task import Task, make_task

ENV_IDS = ("rlopt/OptimizerSelection-v0", "rlopt/LearningRate-v0")
LAYERWISE_ENV_ID = "rlopt/LayerwiseLearningRates-v0"


def make_env(cfg, data: DataBundle | None = None, device: torch.device | None = None) -> TrainingEnv:
    """The environment for `cfg` (per-layer learning rates, `actions.kind=layer_lr`, get the layer-wise
    env), on `device` (default: `trainer.device`) with `data` (default: the config's dataset, split with
    the run seed)."""
    task = make_task(cfg, data, device)
    reward = build_reward(cfg.reward)
    if cfg.controller.actions.kind == LAYER_KIND:
        env = _layerwise_env(cfg, task, reward)
    else:
        actions = build_actions(cfg.controller.actions)
        actions.check_optimizers(cfg.optim)  # its optimizers are nodes of the bank (conf/optim/)
        env = TrainingEnv(task, actions, FeatureSet(cfg.env.features, actions.n_discrete), reward,
                          steps_per_action=cfg.env.steps_per_action, divergence_penalty=cfg.env.divergence_penalty)
    return env


def _layerwise_env(cfg, task: Task, reward) -> LayerwiseTrainingEnv:
    """One lr per layer: the spaces are sized by the model's layer count; decisions every
    `controller.steps_per_action` optimizer steps unless `env.steps_per_action` is set."""
    controller = cfg.controller
    interval = cfg.env.steps_per_action if cfg.env.steps_per_action is not None else controller.steps_per_action
    if isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0:
        raise UserError(f"controller.steps_per_action={interval} is not allowed: use a positive integer "
                        "(env.steps_per_action, when set, takes its place)")
    if not isinstance(controller.per_layer, bool):
        raise UserError(f"controller.per_layer={controller.per_layer} is not allowed: use true or false")
    names = model_layer_names(task, controller.per_layer)
    return LayerwiseTrainingEnv(
        task, LayerLrActions(controller.actions, cfg.optim, len(names)), LayerFeatureSet(controller.features, len(names)),
        reward, layer_names=names, per_layer=controller.per_layer, difference_reward=bool(controller.difference_reward),
        steps_per_action=interval, divergence_penalty=cfg.env.divergence_penalty)


for _env_id in ENV_IDS:
    if _env_id not in gymnasium.registry:
        # Under a seeded reset the observations and rewards repeat (the composite reward charges gradient
        # evaluations unless reward.cost=wall_time), but info["metrics"] carries the step's measured times, and
        # gymnasium's checker compares info too: so the id is flagged nondeterministic.
        gymnasium.register(id=_env_id, entry_point="rlopt.env:make_env", nondeterministic=True)
if LAYERWISE_ENV_ID not in gymnasium.registry:
    gymnasium.register(id=LAYERWISE_ENV_ID, entry_point="rlopt.env:make_env", nondeterministic=True)

__all__ = ["ENV_IDS", "LAYERWISE_ENV_ID", "LayerwiseTrainingEnv", "Task", "TrainingEnv", "make_env", "make_task"]
