"""Gymnasium environments around the training loop, with their observation features and action spaces.

Importing this package registers `rlopt/OptimizerSelection-v0` (and the learning-rate ids) with gymnasium,
so any RL library can `gymnasium.make` them from a composed rlopt config.
"""

import gymnasium

from rlopt.env.training_env import TrainingEnv

ENV_IDS = ("rlopt/OptimizerSelection-v0", "rlopt/LearningRate-v0")

for _env_id in ENV_IDS:
    if _env_id not in gymnasium.registry:
        # nondeterministic: step timings (in info, and in the composite reward) differ run to run;
        # observations and time-free rewards are reproducible under a seeded reset.
        gymnasium.register(id=_env_id, entry_point="rlopt.env.training_env:TrainingEnv", nondeterministic=True)

__all__ = ["ENV_IDS", "TrainingEnv"]
