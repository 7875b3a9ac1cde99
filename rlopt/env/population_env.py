"""`PopulationEnv`: K training runs of one Task as one gymnasium `VectorEnv`, trained as one vectorised model.

Each sub-environment k is a `MemberEnv`: a `TrainingEnv` (the same actions, rewards, bests, divergence
check and metrics row) whose optimizer steps and validations `rlopt.population.PopulationTrainer` takes
for all K members at once. A step applies every member's action, trains each member for its own
decision step (members at different points of their runs take their own number of steps), validates
all of them in one pass, and concludes each member's step as its single run would.

Runs and seeds follow `controller.n_envs` with processes (`rlopt.controllers.sb3_env.RunSlot`): member k's
j-th run is global run i = k + K*j and trains with run seed `task.seed + i`; its rows carry
`episode` = i, `env` = k and `run_seed`. A run that ends is started again in the same step (gymnasium's
SAME_STEP autoreset): the returned observation is the new run's, the last one is in
`info["final_obs"]`, and the finished run's rows and result in `info["final_info"]`. Every step's rows
are in `info["metrics"]` (an object array, one row dict per member). `epoch_time_s` is the wall time of
the population's step, which every member's step took.

It imports gymnasium and torch only; SB3 drives it through `rlopt.controllers.population_vec_env`.
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from rlopt.engine import TrainStats
from rlopt.env.training_env import TrainingEnv
from rlopt.errors import UserError
from rlopt.population import PopulationTrainer
from rlopt.population.members import MemberBank, MemberTrainer
from rlopt.task import Task


class MemberEnv(TrainingEnv):
    """Sub-environment k of a `PopulationEnv`: a TrainingEnv on member k of the population."""

    def __init__(self, population: PopulationTrainer, k: int, *args, **kwargs):
        super().__init__(population.task, *args, **kwargs)
        self.population, self.k = population, k

    def _build(self, run_seed: int) -> None:
        self.run_seed = run_seed
        self.population.init_member(self.k, run_seed)
        self.bank = MemberBank(self.population, self.k)
        self.trainer = MemberTrainer(self.population, self.k)

    def _switch_task(self, task: Task) -> None:
        raise UserError("reset(options={'task': ...}) is not allowed in population mode: its members train one Task")

    def state_dict(self) -> dict:
        """The member's MDP state (the population saves the weights, optimizers and batch order)."""
        state = {name: getattr(self, name) for name in self._STATE_FIELDS}
        state.update(run_seed=self.run_seed, actions=self.actions.state_dict(),
                     np_random=self.np_random.bit_generator.state)
        return state

    def load_state_dict(self, state: dict) -> None:
        self.run_seed = state["run_seed"]
        self.bank = MemberBank(self.population, self.k)
        self.trainer = MemberTrainer(self.population, self.k)
        self.actions.load_state_dict(state["actions"])
        for name in self._STATE_FIELDS:
            setattr(self, name, state[name])
        self.np_random.bit_generator.state = state["np_random"]


class PopulationEnv(gym.vector.VectorEnv):
    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, task: Task, controls: list[dict], *, steps_per_action: int | None, divergence_penalty: float):
        """`controls`: per member, its `actions`, `features` and `reward` objects (as `TrainingEnv` takes them)."""
        self.num_envs = len(controls)
        self.population = PopulationTrainer(task, controls[0]["actions"].optimizers, self.num_envs)
        self.members = [MemberEnv(self.population, k, steps_per_action=steps_per_action,
                                  divergence_penalty=divergence_penalty, **control)
                        for k, control in enumerate(controls)]
        first = self.members[0]
        self.single_action_space, self.single_observation_space = first.action_space, first.observation_space
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.task = task
        self.runs_started = np.zeros(self.num_envs, dtype=np.int64)  # per member, as RunSlot counts them

    @property
    def decisions_per_episode(self) -> int:
        return self.members[0].decisions_per_episode

    def _run_seed(self, k: int) -> int:
        return self.task.seed + k + self.num_envs * int(self.runs_started[k])

    def _start(self, members, seeds=None) -> list[np.ndarray]:
        """Start the next run of each of `members` (one validation pass for all); their first observations."""
        for i, k in enumerate(members):
            seed = None if seeds is None else seeds[i]
            self.members[k]._open(seed, {"run_seed": self._run_seed(k)})
            self.runs_started[k] += 1
        vals = self.population.evaluate(self.task.data.val, np.asarray(members))
        return [self.members[k]._begin(val) for k, val in zip(members, vals)]

    def reset(self, *, seed=None, options=None):
        """Start a run in every member. `seed`: an int seeds member k's `np_random` with seed + k (a list: one
        each, as a VecEnv seeds its sub-environments); the runs' seeds follow the run numbering (see the module
        docstring)."""
        seeds = [seed + k for k in range(self.num_envs)] if isinstance(seed, int) else seed
        super().reset(seed=None if seeds is None else int(seeds[0]))
        obs = self._start(list(range(self.num_envs)), seeds)
        return np.stack(obs), {}

    def step(self, actions):
        started = time.perf_counter()
        members = self.members
        steps = np.array([m._act(a) for m, a in zip(members, actions)])
        evals_before = self.population.grad_evals.copy()
        stats = self.population.train(steps)
        vals = self.population.evaluate(self.task.data.val)
        step_time = time.perf_counter() - started
        obs, rewards = [], np.zeros(self.num_envs)
        terminated, truncated = np.zeros(self.num_envs, dtype=bool), np.zeros(self.num_envs, dtype=bool)
        rows = np.full(self.num_envs, None, dtype=object)
        for k, (member, action) in enumerate(zip(members, actions)):
            one = TrainStats(float(stats.train_loss[k]), float(stats.grad_norm[k]), float(stats.lr[k]))
            o, rewards[k], terminated[k], truncated[k], info = member._conclude(
                action, one, vals[k], step_time, int(evals_before[k]))
            rows[k] = {**info["metrics"], "env": k, "run_seed": member.run_seed}
            obs.append(o)
        infos = {"metrics": rows, "_metrics": np.ones(self.num_envs, dtype=bool)}
        ended = np.flatnonzero(terminated | truncated)
        if len(ended):
            final_obs = np.full(self.num_envs, None, dtype=object)
            final_info = np.full(self.num_envs, None, dtype=object)
            for k in ended:
                final_obs[k] = obs[k]
                final_info[k] = {"status": members[k].status, "best_epoch": members[k].best_epoch}
            for k, o in zip(ended, self._start(list(ended))):
                obs[k] = o
            mask = np.zeros(self.num_envs, dtype=bool)
            mask[ended] = True
            infos.update(final_obs=final_obs, _final_obs=mask, final_info=final_info, _final_info=mask.copy())
        return np.stack(obs), rewards, terminated, truncated, infos

    def state_dict(self) -> dict:
        return {"population": self.population.state_dict(), "members": [m.state_dict() for m in self.members],
                "runs_started": self.runs_started.copy()}

    def load_state_dict(self, state: dict) -> None:
        self.population.load_state_dict(state["population"])
        for member, member_state in zip(self.members, state["members"]):
            member.load_state_dict(member_state)
        self.runs_started[:] = state["runs_started"]
