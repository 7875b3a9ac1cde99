"""Baselines: a fixed action every step, or a uniformly random one (seeded)."""

from __future__ import annotations

from rlopt.errors import UserError
from rlopt.run.protocol import Controller


class FixedController(Controller):
    """Always the same action: `sgd`, `sam`, `adam`, `adadelta` are this with one choice."""

    def __init__(self, cfg, seed: int):
        self.action = int(cfg.action)

    def setup(self, env, state: dict | None, context) -> None:
        if not env.action_space.contains(self.action):
            raise UserError(f"controller.action={self.action} is not allowed: the action space is {env.action_space}")

    def act(self, obs):
        return self.action


class RandomController(Controller):
    """Samples the action space uniformly each step, seeded with the run seed."""

    def __init__(self, cfg, seed: int):
        self.seed = seed
        self.space = None

    def setup(self, env, state: dict | None, context) -> None:
        self.space = env.action_space
        self.space.seed(self.seed)
        if state is not None:
            self.space.np_random.bit_generator.state = state["action_rng"]

    def act(self, obs):
        return self.space.sample()

    def state_dict(self) -> dict:
        return {"action_rng": self.space.np_random.bit_generator.state}
