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

import copy

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
    the run seed). The env of an agent learning across an instance set knows which Task each run seed draws
    (`run_tasks`), so a checkpoint restores it onto the instance of the run it was saved in."""
    from rlopt.instances.sampling import InstanceSampler, learns_across  # (Hydra, pandas): not with rlopt.env

    task = make_task(cfg, data, device)
    if cfg.controller.actions.kind == LAYER_KIND:
        env = _layerwise_env(cfg, task, build_reward(cfg.reward))
    else:
        env = TrainingEnv(task, **_control(cfg), steps_per_action=cfg.env.steps_per_action,
                          divergence_penalty=cfg.env.divergence_penalty)
    if learns_across(cfg):  # the draw of the agent's own sampler (which hands each reset its Task)
        env.run_tasks = InstanceSampler(env, cfg).task_for
    return env


def _control(cfg) -> dict:
    """A run's own action space, observation features and reward (each run keeps its own: they hold state)."""
    actions = build_actions(cfg.controller.actions)
    actions.check_optimizers(cfg.optim)  # its optimizers are nodes of the bank (conf/optim/)
    return {"actions": actions, "features": FeatureSet(cfg.env.features, actions.n_discrete),
            "reward": build_reward(cfg.reward)}


def make_population_env(cfg, n_envs: int, data: DataBundle | None = None, device: torch.device | None = None,
                        groups=None):
    """`n_envs` runs of `cfg`'s Task as one vectorised model (`controller.vectorize=population`): a gymnasium
    VectorEnv, its members numbered and seeded as `controller.n_envs` processes are. `groups`
    (`rlopt.env.population_env.MemberGroup`s): what each group of members draws instead (an instance set's
    Tasks; `data` is then unused)."""
    from rlopt.env.population_env import PopulationEnv  # imports the population engine only where used

    if cfg.controller.actions.kind == LAYER_KIND:
        raise UserError(f"controller.actions.kind={LAYER_KIND} is not allowed with controller.vectorize=population: "
                        "population mode batches one learning rate or optimizer choice per run")
    task = make_task(cfg, data, device) if groups is None else groups[0].draw(int(cfg.seed) + groups[0].members[0])
    # each member's own copies of one built from the config (a build reads the config: ~2 ms, a copy ~0.05 ms)
    control = _control(cfg)
    controls = [control, *(copy.deepcopy(control) for _ in range(n_envs - 1))]
    return PopulationEnv(task, controls, steps_per_action=cfg.env.steps_per_action,
                         divergence_penalty=cfg.env.divergence_penalty, groups=groups)


def _layerwise_env(cfg, task: Task, reward) -> LayerwiseTrainingEnv:
    """One lr per layer: the spaces are sized by the model's layer count; observation and decision interval
    from `env.*`, as for every agent (the layer-wise agent's own: conf/env/per_controller/ppo_layerwise.yaml)."""
    controller = cfg.controller
    if not isinstance(controller.per_layer, bool):
        raise UserError(f"controller.per_layer={controller.per_layer} is not allowed: use true or false")
    names = model_layer_names(task, controller.per_layer)
    return LayerwiseTrainingEnv(
        task, LayerLrActions(controller.actions, cfg.optim, len(names)), LayerFeatureSet(cfg.env.features, len(names)),
        reward, layer_names=names, per_layer=controller.per_layer, difference_reward=bool(controller.difference_reward),
        steps_per_action=cfg.env.steps_per_action, divergence_penalty=cfg.env.divergence_penalty)


for _env_id in ENV_IDS:
    if _env_id not in gymnasium.registry:
        # Under a seeded reset the observations and rewards repeat (the composite reward charges gradient
        # evaluations unless reward.cost=wall_time), but info["metrics"] carries the step's measured times, and
        # gymnasium's checker compares info too: so the id is flagged nondeterministic.
        gymnasium.register(id=_env_id, entry_point="rlopt.env:make_env", nondeterministic=True)
if LAYERWISE_ENV_ID not in gymnasium.registry:
    gymnasium.register(id=LAYERWISE_ENV_ID, entry_point="rlopt.env:make_env", nondeterministic=True)

__all__ = ["ENV_IDS", "LAYERWISE_ENV_ID", "LayerwiseTrainingEnv", "Task", "TrainingEnv", "make_env",
           "make_population_env", "make_task"]
