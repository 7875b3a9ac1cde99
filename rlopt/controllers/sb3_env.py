"""The Stable-Baselines3 adapters: what an SB3 agent acts in (`agent_env`).

`LayerVecEnv`: one layer-wise training run seen by Stable-Baselines3 as one sub-environment per layer.

SB3 batches a VecEnv's sub-environments through one policy, so with a layer per sub-environment
every layer is an agent with the same (shared) policy parameters, and the policy's input is one
layer's observation row: it applies to networks of any depth. The sub-environments are not
independent: they are the layers of ONE run, stepped together with the batch of actions, paid
the same reward and done together. Following SB3's convention the run is reset automatically
when it ends; the last observation is in each info's `terminal_observation`.

Both take the environment as the runner presents it (wrapped, so that every step is recorded)
or bare; attributes are read from the bare one (`env.unwrapped`).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from rlopt.env.layerwise_env import LayerwiseTrainingEnv


def agent_env(env: gym.Env) -> VecEnv:
    """What an SB3 agent acts in: one sub-environment per layer for a layer-wise run, else the env in a
    DummyVecEnv (built here rather than by SB3, so no Monitor wrapper stands between a resumed agent and
    the restored environment)."""
    return LayerVecEnv(env) if isinstance(env.unwrapped, LayerwiseTrainingEnv) else DummyVecEnv([lambda: env])


class LayerVecEnv(VecEnv):
    def __init__(self, env: gym.Env):
        self.env = env
        bare: LayerwiseTrainingEnv = env.unwrapped
        super().__init__(bare.n_layers, bare.features.agent_space, bare.actions.agent_space)
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        # One run for all layers: the first sub-environment's seed and options are the run's.
        obs, info = self.env.reset(seed=self._seeds[0], options=self._options[0] or None)
        self.reset_infos = [dict(info) for _ in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        obs, reward, terminated, truncated, info = self.env.step(self._actions)
        done = terminated or truncated
        infos = [{**info, "TimeLimit.truncated": truncated and not terminated} for _ in range(self.num_envs)]
        if done:
            for layer, layer_info in enumerate(infos):
                layer_info["terminal_observation"] = obs[layer]
            obs, info = self.env.reset()
            self.reset_infos = [dict(info) for _ in range(self.num_envs)]
        return (obs, np.full(self.num_envs, reward, dtype=np.float32), np.full(self.num_envs, done, dtype=bool), infos)

    def close(self) -> None:
        self.env.close()

    # Attribute access reaches the one shared env; a method runs once and its result is repeated per layer.
    def get_attr(self, attr_name: str, indices=None) -> list:
        return [getattr(self.env.unwrapped, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value, indices=None) -> None:
        setattr(self.env.unwrapped, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list:
        result = getattr(self.env.unwrapped, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]
