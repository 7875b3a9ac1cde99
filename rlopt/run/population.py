"""`runs=K controller.vectorize=population`: K seeds of a fixed baseline or a frozen policy trained as one
vectorised model (`rlopt.population`) in this process, each into its own run folder with the files its own
run writes (`rlopt.run.experiment.run_experiment`): `.hydra/`, metrics.csv, TensorBoard, plots, summary.json.

Member k is the run of seed `seeds[k]`, training that seed's Task (one `rlopt.env.population_env.MemberGroup`):
its initial weights, batch order and validation split are that seed's; its controller (one per member, built
from its config) acts on its own observations; a member whose run ends (its budget spent, or diverged) stops
while the others go on. Its rows are its single run's, but for the timing columns: `epoch_time_s` is the
population's step, which every member's step took; `controller_time_s` the member's own controller's.

A population writes no checkpoint. An interrupted one (kill -9 included) keeps the folders of the members that
had finished; rerunning the command leaves those as they are and trains the others from their start again, as
a single run stopped before its first checkpoint starts again (one seed left trains as a single run). A member
folder holding a single run's checkpoint is refused (continue that run with `resume=`). A user's mistake found
before the first row (a model or an optimizer population mode cannot batch, a policy that does not fit) leaves
every folder as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from rlopt.config import validate_train
from rlopt.cpu_memory import keep_freed_memory
from rlopt.data import load_dataset
from rlopt.engine import resolve_device
from rlopt.env import make_population_env
from rlopt.env.population_env import MemberGroup, PopulationEnv
from rlopt.env.training_env import EpisodeResult
from rlopt.errors import RunInterrupted, RunRefused, RunsFailed, UserError
from rlopt.population import PopulationTrainer
from rlopt.population.members import MemberTrainer
from rlopt.run.checkpoint import FILENAME as CHECKPOINT
from rlopt.run.experiment import finish_run, finished_run, run_experiment, seed_everything
from rlopt.run.failures import write_failure
from rlopt.run.folder import RunFolder, pin_data_root
from rlopt.run.interrupts import raise_on_interrupt
from rlopt.run.protocol import Controller, RunContext
from rlopt.run.recorder import RunRecorder
from rlopt.run.seeds import write_overrides
from rlopt.task import Task, make_task
from rlopt.tensorboard_log import tensorboard_rows


class TestedMember(MemberTrainer):
    """Member k as `finish_run` tests a finished run's best weights (`EpisodeResult.evaluate_test`)."""

    @property
    def bf16(self) -> bool:
        return self.population.bf16

    def evaluate(self, split, description: str | None = None) -> dict:
        return super().evaluate(split)


def _no_rows(infos, elapsed) -> None:
    raise RuntimeError("a population member's controller steps no other environments")


@dataclasses.dataclass
class Member:
    """One seed's run inside the population: its config, folder, controller, environment and files."""

    cfg: DictConfig
    run_dir: Path
    overrides: list[str]
    existed: bool  # whether its folder was there before: a refusal removes one it made
    folder: RunFolder | None = None
    controller: Controller | None = None
    env: object = None  # its `rlopt.env.population_env.MemberEnv`
    recorder: RunRecorder | None = None
    live: object = None  # its TensorBoard observer
    obs: np.ndarray | None = None
    summary: dict | None = None


def run_population(jobs: list[tuple[DictConfig, Path, list[str]]],
                   make_controller: Callable[[DictConfig], Controller]) -> list[dict]:
    """Train the runs `jobs` ((config, folder, overrides) per seed, `rlopt.run.seeds.seed_jobs`) as one population;
    their summaries, in order (see the module docstring)."""
    started = time.perf_counter()
    with contextlib.ExitStack() as folders, raise_on_interrupt():
        members = [Member(pin_data_root(cfg), Path(run_dir), overrides, Path(run_dir).is_dir())
                   for cfg, run_dir, overrides in jobs]
        for m in members:
            m.folder = folders.enter_context(RunFolder(m.run_dir))
        for m in members:
            checkpointed = (m.run_dir / CHECKPOINT).is_file()
            m.summary = finished_run(m.run_dir, m.cfg, checkpointed)
            if checkpointed and m.summary is None:
                raise RunRefused(f"{m.run_dir} holds an interrupted single run (checkpoint.pt): continue it with "
                                 f"rlopt train resume={m.run_dir}, or write this population into another folder")
        todo = [m for m in members if m.summary is None]
        if len(todo) > 1:
            _train(todo, make_controller, started)
    if len(todo) == 1:  # one seed left (a rerun): the single-run engine, as runs=1 (a population of 1 is slower)
        m = todo[0]
        write_overrides(m.run_dir, m.overrides, m.cfg)
        m.summary = run_experiment(m.cfg, m.run_dir, make_controller, own_config=True)
    return [m.summary for m in members]


def _train(todo: list[Member], make_controller, started: float) -> None:
    """Train the members not finished yet as one population, each finished (test, plots, summary) when it ends."""
    claimed = False
    try:
        for m in todo:
            validate_train(m.cfg)
            m.controller = make_controller(m.cfg)
        first = todo[0].cfg
        seed_everything(int(first.seed))
        if first.trainer.threads is not None:
            torch.set_num_threads(int(first.trainer.threads))
        device = resolve_device(first.trainer.device)
        if device.type == "cpu":
            keep_freed_memory()
        # each seed's Task: its data split with its seed, as its own run splits it; one population trains them all
        tasks = {int(m.cfg.seed): make_task(m.cfg, load_dataset(m.cfg.dataset, int(m.cfg.seed), device), device)
                 for m in todo}
        envs = make_population_env(first, len(todo), device=device,
                                   groups=[MemberGroup(list(range(len(todo))), tasks.__getitem__)])
        for m, env in zip(todo, envs.members):
            m.env = env
            tb_dir = m.run_dir / "tb" if m.cfg.trainer.tensorboard else None
            m.controller.setup(env, None, RunContext(run_dir=m.run_dir, tb_dir=tb_dir, record_rows=_no_rows, config=m.cfg))
        for m in todo:  # everything checked: from here on the folders are the runs'
            write_overrides(m.run_dir, m.overrides, m.cfg)  # its .hydra/ as a run in its own process has it
            m.folder.claim(m.cfg, starting_over=True, keep_config=True)
        claimed = True
        _step_until_done(envs, tasks, todo, started)
    except BaseException as err:
        for m in todo:
            if m.recorder is not None:
                with contextlib.suppress(OSError):
                    m.recorder.close()
            if m.live is not None:
                m.live.close()
        if not claimed:  # nothing of a run written yet (a refusal): every folder as it was found
            for m in todo:
                m.folder.abandon()
                if not m.existed:
                    m.run_dir.rmdir()
            raise
        unfinished = [m for m in todo if m.summary is None]
        for m in unfinished:
            if isinstance(err, RunInterrupted):
                write_failure(m.run_dir, err, m.cfg, status="interrupted", error=f"interrupted by "
                              f"{signal.Signals(err.signum).name}: rerun the command to train this run again")
            else:
                write_failure(m.run_dir, err, m.cfg)
        if isinstance(err, Exception) and not isinstance(err, UserError):
            raise RunsFailed(f"{len(unfinished)} of {len(todo)} population runs failed (their summary.json says "
                             f"why): {type(err).__name__}: {err}") from err
        raise


def _step_until_done(envs: PopulationEnv, tasks: dict[int, Task], todo: list[Member], started: float) -> None:
    """Start every member's run (member k is `envs`' member k, of its one population), then step the population
    until every run has ended, each member recorded as the runner records a single run
    (`rlopt.run.runner.Runner.record`)."""
    population = envs.populations[0]
    for m in todo:
        m.recorder = RunRecorder(m.run_dir, progress=False)
        seed = int(m.cfg.seed)
        m.env._open(None, {**(m.controller.episode_options() or {}), "run_seed": seed, "task": tasks[seed]})
        m.recorder.start("metrics.csv", m.env.decisions_per_episode)
        m.live = tensorboard_rows(m.cfg, m.run_dir, m.env)
    vals = population.evaluate()  # each member on its own validation split
    for m, val in zip(todo, vals):
        m.obs = m.env._begin(val)
        m.controller.start_episode(m.env)
    running = list(range(len(todo)))
    steps = np.zeros(len(todo), dtype=np.int64)
    while running:
        actions, controller_time = {}, {}
        steps[:] = 0
        for k in running:
            m = todo[k]
            chosen = time.perf_counter()
            actions[k] = m.controller.act(m.obs)
            controller_time[k] = time.perf_counter() - chosen
            steps[k] = m.env._act(actions[k])
        step_started = time.perf_counter()
        stats, vals, evals_before = envs.train_step(steps, running)
        step_time = time.perf_counter() - step_started
        for k in list(running):
            m = todo[k]
            m.obs, _, terminated, truncated, info = m.env._conclude(actions[k], stats[k], vals[k], step_time,
                                                                  int(evals_before[k]))
            row = info["metrics"]
            row.update(env=0, run_seed=m.env.run_seed, instance=m.env.task.name,
                       controller_time_s=controller_time[k], checkpoint_time_s=0.0)
            m.recorder.on_step(row)
            if m.live is not None:
                m.live(row)
            if terminated or truncated:
                _finish(m, k, population, started)
                running.remove(k)


def _finish(m: Member, k: int, population: PopulationTrainer, started: float) -> None:
    """Member k's run has ended: what its controller leaves, the test of its best weights, plots, summary.json."""
    m.controller.finish(m.env, m.run_dir)
    outcome = EpisodeResult(m.env.status, TestedMember(population, k), m.env.best_state, m.env.best_epoch)
    m.summary = finish_run(m.env, outcome, m.recorder, m.cfg, m.run_dir, started, m.controller.summary())
    if m.live is not None:
        m.live.close()
        m.live = None
