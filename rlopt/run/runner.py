"""The runner: drives a controller through the environment and owns what the run writes.

Every controller, fixed or learning, is stepped through `Runner.env`, a wrapper of the
environment that records each step as it returns: the row in `info["metrics"]` goes to the
current CSV (and, for `metrics.csv`, to every observer), the layer-wise env's
`info["layer_rows"]` to `layer_lrs.csv`. The runner also adds what only the driver knows: the
time the controller spent since the previous step (`controller_time_s`, which includes what the
environment reports as `info["extra_time_s"]`, the layer-wise counterfactual) less the time spent
writing checkpoints in between (`checkpoint_time_s`). Fixed controllers and frozen policies act
in the runner's episode loop; agents learn inside their library's own loop (SB3's `learn()`),
stepping the same wrapper, and call `Runner.save` where their state is consistent. Rows stepped in other
processes come back through `RunContext.record_rows` (`record_batch`): the controller never holds the runner.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

import gymnasium as gym

from rlopt.env import TrainingEnv
from rlopt.env.layerwise_env import LAYER_COLUMNS
from rlopt.env.training_env import EpisodeResult
from rlopt.metrics import COLUMNS
from rlopt.run import killpoints
from rlopt.run.checkpoint import Checkpointer, restore_rng
from rlopt.run.protocol import Agent, Controller, RunContext
from rlopt.run.recorder import RunRecorder

Observer = Callable[[dict], None]

# learning_metrics.csv: which sub-environment ran the row's training run (controller.n_envs), its seed and its task
# (the instance id of an instance set, else the dataset)
LEARNING_COLUMNS = [*COLUMNS, "env", "run_seed", "instance"]


class RecordedEnv(gym.Wrapper):
    """The environment as controllers step it: every step is recorded by the runner."""

    def __init__(self, env: TrainingEnv, runner: Runner):
        super().__init__(env)
        self._runner = runner  # private: a controller sees the run through its RunContext, never the runner

    def reset(self, **kwargs):
        result = self.env.reset(**kwargs)
        self._runner.last_return = time.perf_counter()
        return result

    def step(self, action):
        controller_time = self._runner.controller_time()
        result = self.env.step(action)
        self._runner.record(result[4], controller_time, ended=result[2] or result[3])
        self._runner.last_return = time.perf_counter()
        return result


class Runner:
    """Runs a controller on one environment: episodes, recording, checkpoints and their timing.

    `observers` are called with every row written to `metrics.csv`, `learning_observers` with every row
    written to `learning_metrics.csv`, in order, right after it is written; what they raise ends the run
    like any other error."""

    def __init__(self, env: TrainingEnv, recorder: RunRecorder, checkpointer: Checkpointer,
                 observers: Iterable[Observer] = (), learning_observers: Iterable[Observer] = ()):
        self.bare = env
        self.env = RecordedEnv(env, self)
        self.recorder, self.checkpointer = recorder, checkpointer
        self.observers, self.learning_observers = list(observers), list(learning_observers)
        self.last_return = time.perf_counter()
        self.checkpoint_time = 0.0
        self.result: EpisodeResult | None = None  # the controlled episode's, taken from the env when it ended

    # -- driving ----------------------------------------------------------------------------------
    def run(self, controller: Controller, context: RunContext, resume: dict | None = None) -> EpisodeResult:
        """Set `controller` up with `context` (from the checkpoint `resume`, if given), let an agent learn, then
        control one recorded episode, unless an online agent's learning already was that episode; returns that
        episode's result."""
        controller.setup(self.env, resume["controller"] if resume is not None else None, context)
        per_episode = self.bare.decisions_per_episode
        self.last_return = time.perf_counter()
        if isinstance(controller, Agent):
            if not controller.learned:
                online = controller.episodes == 0
                self.recorder.start("metrics.csv" if online else "learning_metrics.csv",
                                    per_episode * max(controller.episodes, 1), COLUMNS if online else LEARNING_COLUMNS)
                if resume is not None:
                    restore_rng(resume["rng"])
                controller.learn(self.env, lambda: self.save(controller))
                resume = None
            if controller.episodes == 0:
                return self.finish(controller)
        self.recorder.start("metrics.csv", per_episode)
        self.episode(controller, resume)
        return self.finish(controller)

    def finish(self, controller: Controller) -> EpisodeResult:
        """Let the controller write what it leaves behind; the controlled episode's result (resumed after its last
        step, no step ended it here: the restored env's)."""
        controller.finish(self.bare, self.recorder.run_dir)
        killpoints.reach("policy")
        result = self.result or self.bare.result()
        if result is None:
            raise RuntimeError("the controller returned before an episode finished")
        return result

    def episode(self, controller: Controller, resume: dict | None = None) -> None:
        """Act with `controller` until the episode ends, offering a checkpoint after every step.

        A fresh episode starts with a reset; a resumed one (`resume` = the loaded checkpoint, whose
        environment state is already restored) continues from the last observation with the RNGs as
        they were when that checkpoint was written."""
        if resume is None:
            obs, _ = self.env.reset(options=controller.episode_options())
        else:
            obs = self.bare.last_obs
        controller.start_episode(self.bare)
        if resume is not None:
            restore_rng(resume["rng"])
        while self.bare.status == "running":
            obs, *_ = self.env.step(controller.act(obs))
            self.save(controller)

    def save(self, controller: Controller) -> None:
        """Offer a checkpoint (the checkpointer writes every `checkpoint.every` offers); its time is
        recorded apart on the next row, not charged to the controller."""
        self.checkpoint_time += self.checkpointer.save(controller.state_dict)

    # -- recording (called by RecordedEnv) ----------------------------------------------------------
    def controller_time(self) -> float:
        """Seconds since the environment last returned, less the checkpoints written since."""
        return time.perf_counter() - self.last_return - self.checkpoint_time

    def record(self, info: dict, controller_time: float, ended: bool = False) -> None:
        """Record the step's row (and layer rows) with the driver's columns; `ended`: the step ended the episode
        of the runner's own env, whose result is taken now, before an agent's VecEnv resets it."""
        row = info["metrics"]
        row.setdefault("env", 0)  # rows of runs in other processes come with their own (rlopt.controllers.sb3_env)
        row.setdefault("run_seed", self.bare.run_seed)
        row.setdefault("instance", self.bare.task.name)
        row["controller_time_s"] = controller_time + info.get("extra_time_s", 0.0)
        row["checkpoint_time_s"], self.checkpoint_time = self.checkpoint_time, 0.0
        self.recorder.on_step(row)
        if "layer_rows" in info:
            self.recorder.on_table("layer_lrs", LAYER_COLUMNS, info["layer_rows"])
        controlled = self.recorder.filename == "metrics.csv"
        if ended and controlled:
            self.result = self.bare.result()
        for observer in self.observers if controlled else self.learning_observers:
            observer(row)
        killpoints.reach("row")

    def record_batch(self, infos: Sequence[dict], elapsed: float) -> None:
        """`RunContext.record_rows`: the rows of sub-environments stepped at once in other processes
        (`controller.n_envs`), whose infos come back together, each recorded as `record` does, in
        sub-environment order. `elapsed`: seconds from the previous batch's return to this batch's actions,
        which include the checkpoints written in between; all rows get the rest as controller time
        (the checkpoint time goes to the first)."""
        controller_time = elapsed - self.checkpoint_time
        for info in infos:
            self.record(info, controller_time)
        self.last_return = time.perf_counter()
