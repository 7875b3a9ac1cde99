"""`PopulationEnv`: K training runs as one gymnasium `VectorEnv`, trained as vectorised models.

Each sub-environment k is a `MemberEnv`: a `TrainingEnv` (the same actions, rewards, bests, divergence
check and metrics row) whose optimizer steps and validations `rlopt.population.PopulationTrainer` takes
for all members of its population at once. A step applies every member's action, trains each member for
its own decision step (members at different points of their runs take their own number of steps),
validates all of them, and concludes each member's step as its single run would.

What the members train: one Task (every member, every run), or `MemberGroup`s: the members of a group
share a `PopulationTrainer` (one architecture) and each of their runs trains the Task `group.draw(run seed)`
gives (an instance set's instance, drawn among the group's; its own data, batch size, budget and
optimizer hyperparameters). Groups of different architectures are separate populations stepped one after
the other in the same `step`; their members' observations and actions have the same shapes (the control
is the command's), so one agent drives them all.

Runs and seeds follow `controller.n_envs` with processes (`rlopt.controllers.sb3_env.RunSlot`): member k's
j-th run is global run i = k + K*j and trains with run seed `task.seed + i`; its rows carry
`episode` = i, `env` = k, `run_seed` and `instance` (the name of the Task it trains). A run that ends is
started again in the same step (gymnasium's SAME_STEP autoreset): the returned observation is the new
run's, the last one is in `info["final_obs"]`, and the finished run's rows and result in
`info["final_info"]`. Every step's rows are in `info["metrics"]` (an object array, one row dict per
member). `epoch_time_s` is the wall time of the whole step, which every member's step took.

It imports gymnasium and torch only; SB3 drives it through `rlopt.controllers.population_vec_env`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from rlopt.engine import TrainStats
from rlopt.env.training_env import TrainingEnv
from rlopt.population import PopulationTrainer
from rlopt.population.members import MemberBank, MemberTrainer
from rlopt.task import Task


@dataclass
class MemberGroup:
    """Members (their indices k in the VectorEnv) that train Tasks of one architecture as one population;
    `draw(run_seed)` is the Task of the run with that seed (the same Task for the same seed)."""

    members: list[int]
    draw: Callable[[int], Task]


class MemberEnv(TrainingEnv):
    """A sub-environment of a `PopulationEnv`: a TrainingEnv on member `j` of `population`, each of its runs
    training the Task `draw` gives for the run's seed. Its best weights are its row of the population's (one
    (K, P) tensor: one copy to keep, one tensor to checkpoint, where K dicts of tensors each cost a pickle)."""

    _STATE_FIELDS = tuple(name for name in TrainingEnv._STATE_FIELDS if name != "best_state")

    def __init__(self, population: PopulationTrainer, j: int, draw: Callable[[int], Task], *args, **kwargs):
        super().__init__(population.task, *args, **kwargs)
        self.population, self.j, self.draw = population, j, draw

    def _build(self, run_seed: int) -> None:
        self.run_seed = run_seed
        self.population.init_member(self.j, run_seed, self.task)
        self.bank = MemberBank(self.population, self.j)
        self.trainer = MemberTrainer(self.population, self.j)

    def _keep_best(self) -> None:
        self.population.keep_best(self.j)

    @property
    def best_state(self) -> dict:
        """The member's best weights as its single run's model state_dict (copies)."""
        return self.population.best_state(self.j)

    def state_dict(self) -> dict:
        """The member's MDP state (the population saves the weights, optimizers and batch order)."""
        state = {name: getattr(self, name) for name in self._STATE_FIELDS}
        state.update(run_seed=self.run_seed, actions=self.actions.state_dict(),
                     np_random=self.np_random.bit_generator.state)
        return state

    def load_state_dict(self, state: dict) -> None:
        """The member's state; its Task is the one its run seed draws (load the population's state after it)."""
        self.run_seed = state["run_seed"]
        self.task = self.draw(self.run_seed)
        self.population.assign(self.j, self.task)
        self.bank = MemberBank(self.population, self.j)
        self.trainer = MemberTrainer(self.population, self.j)
        self.actions.load_state_dict(state["actions"])
        for name in self._STATE_FIELDS:
            setattr(self, name, state[name])
        self.np_random.bit_generator.state = state["np_random"]


class PopulationEnv(gym.vector.VectorEnv):
    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, task: Task, controls: list[dict], *, steps_per_action: int | None, divergence_penalty: float,
                 groups: list[MemberGroup] | None = None):
        """`task`: what every member trains, unless `groups` (covering every member once) say what each group's
        members draw; `task`'s seed numbers the runs (see the module docstring). `controls`: per member, its
        `actions`, `features` and `reward` objects (as `TrainingEnv` takes them)."""
        self.num_envs = len(controls)
        self.task = task
        groups = groups if groups is not None else [MemberGroup(list(range(self.num_envs)), lambda _: task)]
        if sorted(k for g in groups for k in g.members) != list(range(self.num_envs)):
            raise ValueError(f"groups must hold each of the {self.num_envs} members once")
        self.runs_started = np.zeros(self.num_envs, dtype=np.int64)  # per member, as RunSlot counts them
        self.groups, self.populations = groups, []
        self.members: list[MemberEnv | None] = [None] * self.num_envs
        for group in groups:
            first = group.draw(self._run_seed(group.members[0]))  # the population's architecture
            population = PopulationTrainer(first, controls[group.members[0]]["actions"].optimizers, len(group.members))
            self.populations.append(population)
            for j, k in enumerate(group.members):
                self.members[k] = MemberEnv(population, j, group.draw, steps_per_action=steps_per_action,
                                            divergence_penalty=divergence_penalty, **controls[k])
        first = self.members[0]
        self.single_action_space, self.single_observation_space = first.action_space, first.observation_space
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)

    @property
    def decisions_per_episode(self) -> int:
        """Member 0's current run's (members drawing Tasks may have other budgets)."""
        return self.members[0].decisions_per_episode

    def _run_seed(self, k: int) -> int:
        return self.task.seed + k + self.num_envs * int(self.runs_started[k])

    def _start(self, members, seeds=None) -> dict[int, np.ndarray]:
        """Start the next run of each of `members` (one validation pass per population); their first
        observations, by member."""
        for i, k in enumerate(members):
            seed = None if seeds is None else seeds[i]
            run_seed = self._run_seed(k)
            self.members[k]._open(seed, {"run_seed": run_seed, "task": self.members[k].draw(run_seed)})
            self.runs_started[k] += 1
        obs, starting = {}, set(members)
        for group, population in zip(self.groups, self.populations):
            mine = [k for k in group.members if k in starting]
            if mine:
                vals = population.evaluate(None, np.array([self.members[k].j for k in mine]))
                obs.update({k: self.members[k]._begin(val) for k, val in zip(mine, vals)})
        return obs

    def reset(self, *, seed=None, options=None):
        """Start a run in every member. `seed`: an int seeds member k's `np_random` with seed + k (a list: one
        each, as a VecEnv seeds its sub-environments); the runs' seeds follow the run numbering (see the module
        docstring)."""
        seeds = [seed + k for k in range(self.num_envs)] if isinstance(seed, int) else seed
        super().reset(seed=None if seeds is None else int(seeds[0]))
        obs = self._start(list(range(self.num_envs)), seeds)
        return np.stack([obs[k] for k in range(self.num_envs)]), {}

    def train_step(self, steps: np.ndarray, active: list[int] | None = None) -> tuple[list, list, np.ndarray]:
        """Each population trains its members' `steps` and validates them (only the members `active`, when given:
        `rlopt.run.population` stops validating runs that ended): per member its `TrainStats`, validation (None
        for one not validated) and gradient evaluations before the step."""
        stats, vals = [None] * self.num_envs, [None] * self.num_envs
        evals_before = np.zeros(self.num_envs, dtype=np.int64)
        for group, population in zip(self.groups, self.populations):
            evals_before[group.members] = population.grad_evals
            st = population.train(steps[group.members])
            local = list(range(len(group.members))) if active is None else \
                [i for i, k in enumerate(group.members) if k in active]
            validated = population.evaluate() if active is None else population.evaluate(None, np.array(local))
            for i, val in zip(local, validated):
                k = group.members[i]
                stats[k] = TrainStats(float(st.train_loss[i]), float(st.grad_norm[i]), float(st.lr[i]))
                vals[k] = val
        return stats, vals, evals_before

    def step(self, actions):
        started = time.perf_counter()
        members = self.members
        steps = np.array([m._act(a) for m, a in zip(members, actions)])
        stats, vals, evals_before = self.train_step(steps)
        step_time = time.perf_counter() - started
        obs, rewards = [], np.zeros(self.num_envs)
        terminated, truncated = np.zeros(self.num_envs, dtype=bool), np.zeros(self.num_envs, dtype=bool)
        rows = np.full(self.num_envs, None, dtype=object)
        for k, (member, action) in enumerate(zip(members, actions)):
            o, rewards[k], terminated[k], truncated[k], info = member._conclude(
                action, stats[k], vals[k], step_time, int(evals_before[k]))
            rows[k] = {**info["metrics"], "env": k, "run_seed": member.run_seed, "instance": member.task.name}
            obs.append(o)
        infos = {"metrics": rows, "_metrics": np.ones(self.num_envs, dtype=bool)}
        ended = np.flatnonzero(terminated | truncated)
        if len(ended):
            final_obs = np.full(self.num_envs, None, dtype=object)
            final_info = np.full(self.num_envs, None, dtype=object)
            for k in ended:
                final_obs[k] = obs[k]
                final_info[k] = {"status": members[k].status, "best_epoch": members[k].best_epoch}
            for k, o in self._start(list(ended)).items():
                obs[k] = o
            mask = np.zeros(self.num_envs, dtype=bool)
            mask[ended] = True
            infos.update(final_obs=final_obs, _final_obs=mask, final_info=final_info, _final_info=mask.copy())
        return np.stack(obs), rewards, terminated, truncated, infos

    def state_dict(self) -> dict:
        return {"populations": [p.state_dict() for p in self.populations],
                "members": [m.state_dict() for m in self.members], "runs_started": self.runs_started.copy()}

    def load_state_dict(self, state: dict) -> None:
        for member, member_state in zip(self.members, state["members"]):
            member.load_state_dict(member_state)
        for population, population_state in zip(self.populations, state["populations"]):
            population.load_state_dict(population_state)
        self.runs_started[:] = state["runs_started"]
