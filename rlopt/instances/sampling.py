"""An agent learning across an instance set: each of its training runs trains a train instance drawn from its run seed.

`InstanceSampler` wraps the environment an agent acts in (in the main process, or in each worker process
with `controller.n_envs=K`) and, at every reset, hands the environment the Task of the instance that run
draws (`InstanceSet.draw(run_seed)`), through `reset(options={"task": ..., "run_seed": ...})`. The run seeds
are the environment's own (seed + run index; a worker's are given by `RunSlot`), so the draw is a function
of the seed and the run: the same command draws the same instances. Each instance's Task (its data on the
device) is built once and kept. The agent's controlled final run draws its instance the same way
(`task_for`), and every row of learning_metrics.csv names the instance of its run (`instance` column).

Populations (`controller.vectorize=population`) batch members of one architecture: a set whose train part
spans several (`InstanceSet.groups`) is drawn per group, each member among its group's instances
(`among`; `rlopt.controllers.population_vec_env` assigns members to groups).
"""

from __future__ import annotations

import gymnasium as gym
from omegaconf import DictConfig, OmegaConf

from rlopt.instances.spec import Instance, InstanceSet, apply, load_set
from rlopt.task import Task, make_task


def learns_across(cfg: DictConfig) -> bool:
    """Whether the run is an agent drawing a train instance per run (an instance set, no `instance` named)."""
    return (OmegaConf.select(cfg, "instances") is not None and OmegaConf.select(cfg, "instance") is None
            and cfg.controller.type == "sb3" and load_set(cfg, check=False) is not None)


class InstanceSampler(gym.Wrapper):
    def __init__(self, env: gym.Env, cfg: DictConfig, instances: InstanceSet | None = None):
        """`cfg`: the run's config (instance-free, with its `instances` set); `instances`: that set, if loaded."""
        super().__init__(env)
        self.cfg = cfg
        self.instances = instances if instances is not None else load_set(cfg, check=False)
        self.tasks: dict[str, Task] = {}

    def task_for(self, run_seed: int, among: list[Instance] | None = None) -> Task:
        """The Task of the train instance that the run with seed `run_seed` trains (drawn `among` those, if given)."""
        inst = self.instances.draw(run_seed, among)
        if inst.id not in self.tasks:  # named by the instance id (`instance` of the applied config)
            self.tasks[inst.id] = make_task(apply(self.cfg, inst), device=self.env.unwrapped.device)
        return self.tasks[inst.id]

    def decisions(self, run_seed: int, among: list[Instance] | None = None) -> int:
        """Decision steps of the run with seed `run_seed` (its instance's budget; `TrainingEnv.decisions_per_episode`)."""
        task, interval = self.task_for(run_seed, among), self.env.unwrapped.steps_per_action
        return -(-task.budget_steps // (int(interval) if interval is not None else task.batches_per_epoch))

    def learning_steps(self, seed: int, episodes: int, n_envs: int, pools: list[list[Instance]] | None = None) -> int:
        """SB3 timesteps of `episodes` learning runs (seeds seed..) on `n_envs` sub-environments stepped together,
        run i in sub-environment i mod n_envs (drawn among `pools[i mod n_envs]`, if given): n_envs x the longest
        sub-environment's total."""
        runs = [seed + i for i in range(episodes)]
        return n_envs * max(sum(self.decisions(r, pools[k] if pools else None) for r in runs[k::n_envs])
                            for k in range(n_envs))

    def reset(self, *, seed=None, options=None):
        bare = self.env.unwrapped
        options = dict(options or {})
        # the environment's own rule: a given run seed, else a seeded reset's seed, else the next run's
        run_seed = options.get("run_seed", seed if seed is not None else bare.task.seed + bare.episodes_started)
        options.update(run_seed=int(run_seed), task=self.task_for(int(run_seed)))
        return self.env.reset(seed=seed, options=options)
