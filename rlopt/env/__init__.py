"""Gymnasium environments around the training loop, with their observation features and action spaces.

Importing this package registers `rlopt/OptimizerSelection-v0` (and the learning-rate ids) and
`rlopt/LayerwiseLearningRates-v0` with gymnasium, so any RL library can `gymnasium.make` them from
a composed rlopt config. `make_env` picks the environment the controller's action space needs;
`agent_env` is that environment as an SB3 agent acts in it.
"""

import gymnasium
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from rlopt.env.layer_actions import LAYER_KIND
from rlopt.env.layer_vec_env import LayerVecEnv
from rlopt.env.layerwise_env import LayerwiseTrainingEnv
from rlopt.env.training_env import TrainingEnv

ENV_IDS = ("rlopt/OptimizerSelection-v0", "rlopt/LearningRate-v0")
LAYERWISE_ENV_ID = "rlopt/LayerwiseLearningRates-v0"

for _env_id in ENV_IDS:
    if _env_id not in gymnasium.registry:
        # nondeterministic: step timings (in info, and in the composite reward) differ run to run;
        # observations and time-free rewards are reproducible under a seeded reset.
        gymnasium.register(id=_env_id, entry_point="rlopt.env.training_env:TrainingEnv", nondeterministic=True)
if LAYERWISE_ENV_ID not in gymnasium.registry:
    gymnasium.register(id=LAYERWISE_ENV_ID, entry_point="rlopt.env.layerwise_env:LayerwiseTrainingEnv", nondeterministic=True)


def make_env(cfg, data=None, recorder=None) -> TrainingEnv:
    """The environment for `cfg`: per-layer learning rates (`actions.kind=layer_lr`) get the layer-wise env."""
    cls = LayerwiseTrainingEnv if cfg.controller.actions.kind == LAYER_KIND else TrainingEnv
    return cls(cfg, data=data, recorder=recorder)


def agent_env(env: TrainingEnv) -> VecEnv:
    """What an SB3 agent acts in: one sub-environment per layer for a layer-wise run, else the env in a
    DummyVecEnv (built here rather than by SB3, so no Monitor wrapper stands between a resumed agent and
    the restored environment)."""
    return LayerVecEnv(env) if isinstance(env, LayerwiseTrainingEnv) else DummyVecEnv([lambda: env])


__all__ = ["ENV_IDS", "LAYERWISE_ENV_ID", "LayerVecEnv", "LayerwiseTrainingEnv", "TrainingEnv", "agent_env", "make_env"]
