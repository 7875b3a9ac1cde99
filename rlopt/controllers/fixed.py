"""Baselines: a fixed action every step, or a uniformly random one (seeded)."""

from __future__ import annotations

from rlopt.controllers.loop import run_episode
from rlopt.errors import UserError


class FixedController:
    """Always the same action: `sgd`, `sam`, `adam`, `adadelta` are this with one choice."""

    def __init__(self, cfg, seed: int):
        self.action = int(cfg.get("action", 0))

    def run(self, env, recorder, checkpointer, resume: dict | None = None) -> None:
        if not env.action_space.contains(self.action):
            raise UserError(f"controller.action={self.action} is not allowed: the action space is {env.action_space}")
        recorder.start("metrics.csv", env.decisions_per_episode)
        run_episode(env, lambda obs: self.action, checkpointer.save, resume=resume)


class RandomController:
    """Samples the action space uniformly each step, seeded with the run seed."""

    def __init__(self, cfg, seed: int):
        self.seed = seed

    def run(self, env, recorder, checkpointer, resume: dict | None = None) -> None:
        env.action_space.seed(self.seed)
        rng = env.action_space.np_random
        if resume is not None:
            rng.bit_generator.state = resume["controller"]["action_rng"]
        recorder.start("metrics.csv", env.decisions_per_episode)
        run_episode(env, lambda obs: env.action_space.sample(),
                    lambda: checkpointer.save(lambda: {"action_rng": rng.bit_generator.state}), resume=resume)
