"""The Stable-Baselines3 adapter of population mode (`controller.vectorize=population`).

`PopulationVecEnv` presents a `rlopt.env.population_env.PopulationEnv` (K runs as vectorised models,
a gymnasium VectorEnv with SAME_STEP autoreset) as SB3's `VecEnv`: one info dict per member, the
finished run's last observation in `terminal_observation`. `PopulationRuns` is what the SB3 controller
learns in with `controller.n_envs=K controller.vectorize=population`, with the interface of
`sb3_env.ParallelRuns` (the K processes of `vectorize=processes`): the agent's VecEnv, whose rows the
run records (`RecordedVecEnv`), and the state a checkpoint keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import gymnasium as gym
import numpy as np

from rlopt.controllers.sb3_env import InProcessVecEnv, RecordedVecEnv
from rlopt.env import make_population_env
from rlopt.env.population_env import MemberGroup, PopulationEnv
from rlopt.instances.sampling import InstanceSampler
from rlopt.resources import peak_gpu_memory_mb


class PopulationVecEnv(InProcessVecEnv):
    def __init__(self, env: PopulationEnv):
        self.env = env
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)

    def reset(self) -> np.ndarray:
        seeds = None if all(s is None for s in self._seeds) else [int(s or 0) for s in self._seeds]
        obs, _ = self.env.reset(seed=seeds)
        self._reset_done([{} for _ in range(self.num_envs)])
        return obs

    def step_wait(self):
        obs, rewards, terminated, truncated, infos = self.env.step(self._actions)
        out = []
        for k in range(self.num_envs):
            info = {"metrics": infos["metrics"][k], "TimeLimit.truncated": bool(truncated[k] and not terminated[k])}
            if infos.get("_final_obs", np.zeros(self.num_envs, dtype=bool))[k]:
                info["terminal_observation"] = infos["final_obs"][k]
            out.append(info)
        return obs, rewards.astype(np.float32), terminated | truncated, out

    def close(self) -> None:
        self.env.close()

    # Attributes and methods are the members' (each a TrainingEnv on its row of the population).
    def get_attr(self, attr_name: str, indices=None) -> list:
        return [getattr(self.env.members[k], attr_name) for k in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value, indices=None) -> None:
        for k in self._get_indices(indices):
            setattr(self.env.members[k], attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list:
        return [getattr(self.env.members[k], method_name)(*method_args, **method_kwargs)
                for k in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]


class PopulationRuns:
    """K learning runs as populations in this process (`ParallelRuns`' interface): of the main env's Task, or with an
    instance set of the Tasks each run draws, member k among the instances of its architecture group
    (`InstanceSet.population_pools`: group k mod G, one population per group)."""

    def __init__(self, env: gym.Env, config, record: Callable[[Sequence[dict], float], None], n_envs: int,
                 sampler: InstanceSampler | None = None):
        """`env`: the run's environment, whose Task's data the population shares; `record`: the run's
        `RunContext.record_rows`; `sampler`: the run's instance sampler, when the agent learns across a set (its
        Tasks, each built once, are the ones the final run draws from too)."""
        bare = env.unwrapped
        groups = None
        # per member the instances it draws among (None: every member trains the main env's Task)
        self.pools = sampler.instances.population_pools(config, n_envs) if sampler is not None else None
        if self.pools is not None:
            by_pool: dict[int, list[int]] = {}
            for k, pool in enumerate(self.pools):
                by_pool.setdefault(id(pool), []).append(k)
            groups = [MemberGroup(members, partial(sampler.task_for, among=self.pools[members[0]]))
                      for members in by_pool.values()]
        self.population = make_population_env(config, n_envs, data=bare.task.data, device=bare.device, groups=groups)
        self.recorded = RecordedVecEnv(PopulationVecEnv(self.population), record)
        self.agent, self.per_run = self.recorded, 1

    def state(self) -> dict:
        return self.population.state_dict()

    def load_state(self, state: dict) -> None:
        self.population.load_state_dict(state)

    def peak_gpu_memory_mb(self) -> list[float | None]:
        return [peak_gpu_memory_mb(self.population.task.device)]

    def close(self) -> None:
        self.population.close()
