"""`rlopt train`: one run, a pure function of the config (`train`) plus a thin @hydra.main wrapper.

The run folder receives metrics.csv (row by row), summary.json, plots and, for RL controllers,
policy.zip/policy.json. A failure after training started still writes summary.json with
`status: failed` and the error, and never deletes what was already written.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from rlopt.checkpoint import Checkpointer, load_checkpoint
from rlopt.config import validate_train
from rlopt.controllers import build_controller
from rlopt.controllers.runner import Observer, Runner
from rlopt.cpu_memory import keep_freed_memory
from rlopt.data import load_dataset
from rlopt.engine import resolve_device
from rlopt.env import TrainingEnv, make_env
from rlopt.errors import UserError
from rlopt.failures import write_failure
from rlopt.files import write_json
from rlopt.hydra_app import hydra_entry
from rlopt.metrics import build_summary
from rlopt.models import model_name
from rlopt.paths import conf_dir
from rlopt.recorder import RunRecorder
from rlopt.reporting.plots import plot_layer_lrs, plot_run

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


def finish_run(env: TrainingEnv, recorder: RunRecorder, cfg, run_dir: Path, started: float) -> dict:
    """Test the best checkpoint, write summary.json and the plots."""
    result = env.last_result
    if result is None:
        raise RuntimeError("the controller returned before an episode finished")
    test = result.evaluate_test()
    recorder.close()
    grad_evals = recorder.rows[-1]["grad_evals"] if recorder.rows else 0
    tuning = cfg.get("tuning") or {}
    summary = build_summary(
        recorder.rows, result.status, test, result.best_epoch, time.perf_counter() - started,
        float(cfg.trainer.converged_tolerance), action_names(env),
        extra={"dataset": cfg.dataset.name, "model": model_name(cfg.model.name, cfg.dataset.name),
               "controller": cfg.controller.name,
               "reward": cfg.reward.name, "seed": int(cfg.seed), "device": str(env.device),
               "precision": "bf16 autocast" if result.trainer.bf16 else "fp32", "policy": cfg.get("policy"),
               "tuning_grad_evals": int(tuning.get("grad_evals", 0)), "tuning_trials": int(tuning.get("trials", 0)),
               "total_grad_evals": learning_grad_evals(run_dir) + grad_evals + int(tuning.get("grad_evals", 0))},
    )
    write_json(run_dir / "summary.json", summary)
    if cfg.trainer.plots:
        plot_run(pd.read_csv(run_dir / "metrics.csv"), run_dir, f"{cfg.dataset.name} / {cfg.controller.name}")
        if (run_dir / "layer_lrs.csv").is_file():
            layers = pd.read_csv(run_dir / "layer_lrs.csv", dtype={"name": str})  # module paths like "0.2" stay text
            plot_layer_lrs(layers, run_dir, f"{cfg.dataset.name} / {cfg.controller.name}")
    log.info("%s: status=%s test_loss=%.4g test_acc=%s", run_dir, summary["status"], summary["test_loss"], summary["test_acc"])
    return summary


def run_experiment(cfg: DictConfig, run_dir: Path, make_controller: Callable[[], object],
                   observers: Iterable[Observer] = ()) -> dict:
    """Data, environment and controller for `cfg`, run into `run_dir`; returns the summary.

    Shared by `train` and `evaluate`, which differ only in the controller they build. A run folder
    that already holds `checkpoint.pt` (an interrupted run, or a requeued cluster job) continues
    from it instead of starting over. Each of `observers` is called with every row written to
    metrics.csv, right after it is written (see `Runner`); what one raises fails the run.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    recorder = RunRecorder(run_dir, progress=bool(cfg.trainer.progress), title=f"{cfg.dataset.name}/{cfg.controller.name}")
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
        checkpointer = Checkpointer(run_dir, env, recorder, every=int(cfg.checkpoint.every))
        resume = load_checkpoint(run_dir) if checkpointer.path.exists() else None
        if resume is not None:
            env.load_state_dict(resume["env"])
            recorder.load_state_dict(resume["recorder"])
            log.info("resuming %s after %d committed steps", run_dir, resume["recorder"]["committed_rows"])
        Runner(env, recorder, checkpointer, observers).run(controller, resume)
        summary = finish_run(env, recorder, cfg, run_dir, started)
        if not cfg.checkpoint.keep:
            checkpointer.remove()
        return summary
    except BaseException as err:
        recorder.close()
        write_failure(run_dir, err, cfg)
        raise


def resume_target(path: str) -> tuple[DictConfig, Path]:
    """The config and folder of the interrupted run at `path` (what `resume=PATH` continues)."""
    run_dir = Path(path).expanduser()
    config = run_dir / ".hydra" / "config.yaml"
    if not config.is_file():
        raise UserError(f"resume={path} is not a run folder: {config} is missing")
    summary = run_dir / "summary.json"
    if summary.is_file() and json.loads(summary.read_text()).get("status") in ("completed", "diverged"):
        raise UserError(f"resume={path}: that run already finished (see its summary.json); nothing to resume")
    cfg = OmegaConf.load(config)
    with open_dict(cfg):
        cfg.resume = None
    return cfg, run_dir


def train(cfg: DictConfig, run_dir: Path, observers: Iterable[Observer] = ()) -> dict:
    """Run one experiment described by `cfg` into `run_dir` (or continue `cfg.resume`); returns the summary.
    `observers`: see `run_experiment`."""
    if cfg.get("resume"):
        cfg, run_dir = resume_target(cfg.resume)
    return run_experiment(cfg, run_dir, lambda: build_controller(cfg.controller, int(cfg.seed)), observers)


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="train")
def main(cfg: DictConfig) -> None:
    hydra_entry("train", cfg, train)


if __name__ == "__main__":
    main()
