"""`rlopt train`: one run, a pure function of the config (`train`) plus a thin @hydra.main wrapper.

The run folder receives metrics.csv (row by row), summary.json, plots and, for RL controllers,
policy.zip/policy.json. A failure after training started still writes summary.json with
`status: failed` and the error, and never deletes what was already written.
"""

from __future__ import annotations

import json
import logging
import random
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from rlopt.config import validate_train
from rlopt.controllers import build_controller
from rlopt.controllers.runner import Observer, Runner
from rlopt.cpu_memory import keep_freed_memory
from rlopt.data import load_dataset
from rlopt.engine import resolve_device
from rlopt.env import TrainingEnv, make_env
from rlopt.errors import RunInterrupted, RunRefused, UserError
from rlopt.files import write_json
from rlopt.hydra_app import hydra_entry
from rlopt.instances import jobs, load_set, run_config, run_each, run_instance
from rlopt.metrics import build_summary
from rlopt.models import model_name
from rlopt.paths import conf_dir
from rlopt.reporting.plots import plot_layer_lrs, plot_run
from rlopt.reporting.runs import FINISHED
from rlopt.resources import peak_gpu_memory_mb
from rlopt.run import killpoints
from rlopt.run.checkpoint import FILENAME as CHECKPOINT
from rlopt.run.checkpoint import Checkpointer, load_checkpoint
from rlopt.run.failures import write_failure
from rlopt.run.folder import RunFolder, config_values, pin_data_root, same_config
from rlopt.run.interrupts import raise_on_interrupt
from rlopt.run.recorder import RunRecorder
from rlopt.tensorboard_log import tensorboard_rows

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def action_names(env) -> list[str] | None:
    """Names of the discrete actions (optimizers, lr moves) for action_counts; None: count raw values."""
    labels = getattr(env.actions, "labels", None)
    return list(labels) if labels is not None else None


def learning_grad_evals(run_dir: Path) -> int:
    """Gradient evaluations an agent spent in its learning runs (learning_metrics.csv; cumulative per episode)."""
    path = run_dir / "learning_metrics.csv"
    if not path.is_file():
        return 0
    rows = pd.read_csv(path, usecols=["episode", "grad_evals"])
    return int(rows.groupby("episode")["grad_evals"].max().sum())


def finish_run(env: TrainingEnv, recorder: RunRecorder, cfg, run_dir: Path, started: float,
               extra: dict | None = None) -> dict:
    """Test the best checkpoint, write the plots, then summary.json (with the controller's `extra` keys): its
    status is the last thing a run writes (after policy and plots), so a folder that says `completed` has all
    its files, and a run killed anywhere before that resumes into finishing again."""
    result = env.last_result
    if result is None:
        raise RuntimeError("the controller returned before an episode finished")
    test = result.evaluate_test()
    recorder.close()
    grad_evals = recorder.rows[-1]["grad_evals"] if recorder.rows else 0
    tuning = cfg.get("tuning") or {}
    task = env.task  # what the controlled run trained: an agent learning across instances drew it (rlopt.instances)
    instance, part = run_instance(cfg, task.name)
    summary = build_summary(
        recorder.rows, result.status, test, result.best_epoch, time.perf_counter() - started,
        float(cfg.trainer.converged_tolerance), action_names(env),
        extra={"dataset": task.data.name, "model": model_name(task.model.name, task.data.name),
               "controller": cfg.controller.name,
               "reward": cfg.reward.name, "seed": int(cfg.seed), "device": str(env.device),
               "precision": "bf16 autocast" if result.trainer.bf16 else "fp32", "policy": cfg.get("policy"),
               "tuning_grad_evals": int(tuning.get("grad_evals", 0)), "tuning_trials": int(tuning.get("trials", 0)),
               "total_grad_evals": learning_grad_evals(run_dir) + grad_evals + int(tuning.get("grad_evals", 0)),
               "gpu_peak_memory_mb": peak_gpu_memory_mb(env.device),
               "instance": instance, "instance_part": part, **(extra or {})},
    )
    if cfg.trainer.plots:
        plot_run(pd.read_csv(run_dir / "metrics.csv"), run_dir, f"{cfg.dataset.name} / {cfg.controller.name}")
        if (run_dir / "layer_lrs.csv").is_file():
            layers = pd.read_csv(run_dir / "layer_lrs.csv", dtype={"name": str})  # module paths like "0.2" stay text
            plot_layer_lrs(layers, run_dir, f"{cfg.dataset.name} / {cfg.controller.name}")
        killpoints.reach("plots")
    write_json(run_dir / "summary.json", summary)
    killpoints.reach("summary")
    log.info("%s: status=%s test_loss=%.4g test_acc=%s", run_dir, summary["status"], summary["test_loss"], summary["test_acc"])
    return summary


def finished_summary(run_dir: Path) -> dict | None:
    """The summary of a run that finished (completed or diverged) in `run_dir`, else None."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
    except ValueError:
        return None
    return summary if summary.get("status") in FINISHED else None


def _resumable(run_dir: Path, cfg: DictConfig, recorder: RunRecorder) -> tuple[dict | None, DictConfig]:
    """The checkpoint in `run_dir` to continue, if any, and the config to run: the checkpointed run's own
    (shown with this invocation's progress setting). Refuses (`RunRefused`, nothing written) a checkpoint of
    another config or one its CSV files disagree with."""
    checkpoint = run_dir / CHECKPOINT
    if not checkpoint.exists():
        return None, cfg
    resume = load_checkpoint(run_dir)
    if "config" not in resume:
        raise RunRefused(f"{checkpoint} was written by an older rlopt; that run cannot be resumed by this one")
    same_config(run_dir, resume["config"], cfg)
    recorder.check(resume["recorder"])
    saved = OmegaConf.create(resume["config"])
    saved.trainer.progress = cfg.trainer.progress
    return resume, saved


def run_experiment(cfg: DictConfig, run_dir: Path, make_controller: Callable[[], object],
                   observers: Iterable[Observer] = (), own_config: bool = False) -> dict:
    """Data, environment and controller for `cfg`, run into `run_dir`; returns the summary.

    Shared by `train` and `evaluate`, which differ only in the controller they build. The run holds the
    folder's lock throughout (`RunFolder`). A run folder that already holds `checkpoint.pt` (an interrupted
    run, or a requeued cluster job) continues from it instead of starting over, if it is the same run
    (`_resumable`). Each of `observers` is called with every row written to metrics.csv, right after it is
    written (see `Runner`); what one raises fails the run. SIGINT/SIGTERM raise `RunInterrupted` after
    summary.json records `status: interrupted`. `own_config`: `cfg` is the folder's saved one (`resume=`), whose
    `.hydra/` files stay as they are even if the run has to start over (it stopped before its first checkpoint).
    """
    run_dir = Path(run_dir)
    started = time.perf_counter()
    cfg = pin_data_root(cfg)
    with RunFolder(run_dir) as folder, raise_on_interrupt():
        recorder = RunRecorder(run_dir, progress=bool(cfg.trainer.progress), title=f"{cfg.dataset.name}/{cfg.controller.name}")
        resume, cfg = _resumable(run_dir, cfg, recorder)
        done = finished_summary(run_dir) if resume is not None else None
        folder.claim(cfg, starting_over=resume is None, keep_config=own_config)
        if done is not None:  # killed after its summary, before the checkpoint was removed: only that is left
            if not cfg.checkpoint.keep:
                (run_dir / CHECKPOINT).unlink()
            return done
        live = None  # the TensorBoard observer (rlopt.tensorboard_log), closed however the run ends
        try:
            validate_train(cfg)
            controller = make_controller()  # its config errors surface before any data is read
            seed_everything(int(cfg.seed))
            if cfg.trainer.threads is not None:
                torch.set_num_threads(int(cfg.trainer.threads))
            device = resolve_device(cfg.trainer.device)
            if device.type == "cpu":
                keep_freed_memory()  # stops every batch page-faulting its buffers in afresh (see cpu_memory)
            data = load_dataset(cfg.dataset, int(cfg.seed), device)
            env = make_env(cfg, data, device)
            checkpointer = Checkpointer(run_dir, env, recorder, config_values(cfg), every=int(cfg.checkpoint.every))
            if resume is not None:
                recorder.load_state_dict(resume["recorder"])
                env.load_state_dict(resume["env"])
                committed = resume["recorder"]["files"].get(resume["recorder"]["file"], {"rows": 0})["rows"]
                log.info("resuming %s after %d committed steps", run_dir, committed)
            live = tensorboard_rows(cfg, run_dir, env)
            Runner(env, recorder, checkpointer, [*observers, *([live] if live else [])],
                   [live.learning] if live else []).run(controller, resume)
            summary = finish_run(env, recorder, cfg, run_dir, started, controller.summary())
            if not cfg.checkpoint.keep:
                checkpointer.remove()
            return summary
        except RunInterrupted as err:
            recorder.close()
            err.step, err.run_dir = len(recorder.rows), run_dir
            write_failure(run_dir, err, cfg, status="interrupted",
                          error=f"interrupted by {signal.Signals(err.signum).name} at step {err.step}")
            raise
        except BaseException as err:
            recorder.close()
            write_failure(run_dir, err, cfg)
            raise
        finally:
            if live is not None:
                live.close()


def resume_target(path: str) -> tuple[DictConfig, Path]:
    """The config and folder of the interrupted run at `path` (what `resume=PATH` continues)."""
    run_dir = Path(path).expanduser()
    config = run_dir / ".hydra" / "config.yaml"
    if not config.is_file():
        raise UserError(f"resume={path} is not a run folder: {config} is missing")
    cfg = OmegaConf.load(config)
    if finished_summary(run_dir) is not None and (cfg.checkpoint.keep or not (run_dir / CHECKPOINT).exists()):
        raise UserError(f"resume={path}: that run already finished (see its summary.json); nothing to resume")
    with open_dict(cfg):
        cfg.resume = None
    return cfg, run_dir


def train(cfg: DictConfig, run_dir: Path, observers: Iterable[Observer] = ()) -> dict:
    """Run one experiment described by `cfg` into `run_dir` (or continue `cfg.resume`); returns the summary.
    `observers`: see `run_experiment`."""
    resuming = bool(cfg.get("resume"))
    if resuming:
        cfg, run_dir = resume_target(cfg.resume)
    instances = None if resuming else load_set(cfg)
    if instances is None and not resuming and cfg.instance is not None:
        raise UserError(f"instance={cfg.instance} needs an instance set: add instances=<set> (conf/instances/) "
                        "or instances.file=")
    if instances is not None and cfg.instance == "all":  # every instance of the set, a folder each
        return run_each(run_dir, jobs(cfg, instances.all, [int(cfg.seed)]), lambda one, folder: run_experiment(
            one, folder, lambda: build_controller(one.controller, int(one.seed)), observers))
    if instances is not None:
        cfg = run_config(cfg, instances)
    return run_experiment(cfg, run_dir, lambda: build_controller(cfg.controller, int(cfg.seed)), observers,
                          own_config=resuming)


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="train")
def main(cfg: DictConfig) -> None:
    hydra_entry("train", cfg, train)


if __name__ == "__main__":
    main()
