"""One run's life, from its folder to its summary.json: `run_experiment`, which `rlopt train`, `rlopt evaluate`
and every run of `rlopt tune` go through. They differ only in the config they pass and the controller built
from it. In order:

1. folder: hold its lock (`RunFolder`), so one process writes it;
2. resume: a `checkpoint.pt` of the same run (config and CSV files agree) is continued, and its config is the
   config run from here on;
3. finished: a folder whose summary.json says completed or diverged is left as it is (one line; its summary
   is the result), so rerunning a command, or a sweep into the same `hydra.sweep.dir`, never retrains it;
4. config check: `validate_train` and the controller, built from that config;
5. claim: `.hydra/`, the pid, no stale summary.json (`RunFolder.claim`);
6. data, environment, runner: the controller acts (and learns), every row recorded, checkpoints written;
7. finish: test the best weights, plots, summary.json last.

A user's mistake found before the run recorded a row (a config value, a dataset that is not there, a
policy that does not fit) is a refusal: the folder is left as it was found (`RunFolder.abandon`) and the
`UserError` goes up to the command, which says it in one line. A failure after that writes summary.json
`failed`, an interrupt `interrupted` (resumable), and both keep everything written.
"""

from __future__ import annotations

import contextlib
import logging
import random
import signal
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from rlopt.config import validate_train
from rlopt.cpu_memory import keep_freed_memory
from rlopt.data import load_dataset
from rlopt.engine import resolve_device
from rlopt.env import TrainingEnv, make_env
from rlopt.env.training_env import EpisodeResult
from rlopt.errors import RunInterrupted, RunRefused, UserError
from rlopt.files import write_json
from rlopt.instances import instance_config, load_set, run_instance
from rlopt.instances.sampling import learns_across
from rlopt.metrics import build_summary
from rlopt.models import model_name
from rlopt.resources import peak_gpu_memory_mb
from rlopt.run import killpoints
from rlopt.run.checkpoint import FILENAME as CHECKPOINT
from rlopt.run.checkpoint import Checkpointer, load_checkpoint
from rlopt.run.failures import write_failure
from rlopt.run.folder import RunFolder, config_values, differing_keys, finished_summary, pin_data_root, same_config, saved_config
from rlopt.run.interrupts import raise_on_interrupt
from rlopt.run.protocol import Controller, RunContext
from rlopt.run.recorder import RunRecorder
from rlopt.run.runner import Observer, Runner
from rlopt.tensorboard_log import tensorboard_rows

log = logging.getLogger(__name__)


def run_experiment(cfg: DictConfig, run_dir: Path, make_controller: Callable[[DictConfig], Controller],
                   observers: Iterable[Observer] = (), own_config: bool = False) -> dict:
    """Run `cfg` into `run_dir` (see the module docstring); returns the summary.

    `make_controller` is called with the config actually run (a resumed run's own). Each of `observers` is
    called with every row written to metrics.csv, right after it is written (see `Runner`); what one raises
    fails the run. SIGINT/SIGTERM raise `RunInterrupted` after summary.json records `status: interrupted`.
    `own_config`: `cfg` is the folder's saved one (`resume=`), whose `.hydra/` files stay as they are even if
    the run has to start over (it stopped before its first checkpoint).
    """
    run_dir = Path(run_dir)
    started = time.perf_counter()
    cfg = pin_data_root(instance_config(cfg))  # the task of its instance, if it names one (rlopt.instances)
    with RunFolder(run_dir) as folder, raise_on_interrupt():
        recorder = RunRecorder(run_dir, progress=bool(cfg.trainer.progress), title=f"{cfg.dataset.name}/{cfg.controller.name}")
        resume, cfg = _resumable(run_dir, cfg, recorder)
        done = finished_run(run_dir, cfg, resume is not None)
        if done is not None:
            return done
        live = None  # the TensorBoard observer (rlopt.tensorboard_log), closed however the run ends
        claimed = False  # until the folder is claimed, however the run stops it leaves the folder as it found it
        try:
            validate_train(cfg)
            controller = make_controller(cfg)  # its config errors surface before anything is written
            if learns_across(cfg) and int(cfg.controller.n_envs) > 1 and cfg.controller.vectorize == "population":
                # one population per architecture group of the train instances: fewer members than groups is one line
                load_set(cfg, check=False).population_pools(cfg, int(cfg.controller.n_envs))
            folder.claim(cfg, starting_over=resume is None, keep_config=own_config)
            claimed = True
            killpoints.reach("claimed")
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
            runner = Runner(env, recorder, checkpointer, [*observers, *([live] if live else [])],
                            [live.learning] if live else [])
            context = RunContext(run_dir=run_dir, tb_dir=run_dir / "tb" if cfg.trainer.tensorboard else None,
                                 record_rows=runner.record_batch, config=cfg)
            outcome = runner.run(controller, context, resume)
            summary = finish_run(env, outcome, recorder, cfg, run_dir, started, controller.summary())
            if not cfg.checkpoint.keep:
                checkpointer.remove()
            return summary
        except RunInterrupted as err:
            _close_after_failure(recorder)
            if not claimed:  # nothing to continue: "interrupted before the run started"
                folder.abandon()
                raise
            err.step, err.run_dir = len(recorder.rows), run_dir
            write_failure(run_dir, err, cfg, status="interrupted",
                          error=f"interrupted by {signal.Signals(err.signum).name} at step {err.step}")
            raise
        except UserError as err:
            _close_after_failure(recorder)
            if recorder.wrote_rows:
                write_failure(run_dir, err, cfg)
            else:  # a refusal: the folder is left as it was found
                folder.abandon()
            raise
        except BaseException as err:
            _close_after_failure(recorder)
            if claimed:
                write_failure(run_dir, err, cfg)
            else:
                folder.abandon()
            raise
        finally:
            if live is not None:
                live.close()


def _close_after_failure(recorder: RunRecorder) -> None:
    """Close the CSVs of a run that stopped. Closing flushes them, which on a full disk fails as the run did: the
    run's own error is the one to report, and what the last checkpoint committed is on disk already."""
    with contextlib.suppress(OSError):
        recorder.close()


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


def finished_run(run_dir: Path, cfg: DictConfig, checkpointed: bool) -> dict | None:
    """The summary of the run that already finished in `run_dir`, which is left as it is (said in one line);
    None if there is none. A run killed after its summary but before it removed its checkpoint (`checkpointed`,
    the same config) only has that removal left. A finished run of another config is refused."""
    done = finished_summary(run_dir)
    if done is None:
        return None
    saved = saved_config(run_dir)
    differ = differing_keys(config_values(saved), config_values(cfg)) if saved is not None and not checkpointed else []
    if differ:
        raise RunRefused(f"{run_dir} holds a finished run with a different config ({', '.join(differ[:8])} differ); "
                         "write this run into another folder")
    if checkpointed and not cfg.checkpoint.keep:
        (run_dir / CHECKPOINT).unlink()
    print(f"{run_dir}: already {done['status']} (its summary.json holds the result); left as it is", file=sys.stderr)
    return done


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


def finish_run(env: TrainingEnv, outcome: EpisodeResult, recorder: RunRecorder, cfg, run_dir: Path, started: float,
               extra: dict | None = None) -> dict:
    """Test the best checkpoint of the controlled episode (`outcome`), write the plots, then summary.json (with
    the controller's `extra` keys): its status is the last thing a run writes (after policy and plots), so a
    folder that says `completed` has all its files, and a run killed anywhere before that resumes into
    finishing again."""
    test = outcome.evaluate_test(progress=bool(cfg.trainer.progress))
    recorder.close()
    grad_evals = recorder.rows[-1]["grad_evals"] if recorder.rows else 0
    task = env.task  # what the controlled run trained: an agent learning across instances drew it (rlopt.instances)
    instance, part = run_instance(cfg, task.name)
    summary = build_summary(
        recorder.rows, outcome.status, test, outcome.best_epoch, time.perf_counter() - started,
        float(cfg.trainer.converged_tolerance), action_names(env),
        extra={"dataset": task.data.name, "model": model_name(task.model.name, task.data.name),
               "controller": cfg.controller.name,
               "reward": cfg.reward.name, "seed": int(cfg.seed), "device": str(env.device),
               "precision": "bf16 autocast" if outcome.trainer.bf16 else "fp32", "policy": None,  # FrozenPolicy names it
               "tuning_grad_evals": int(cfg.tuning.grad_evals), "tuning_trials": int(cfg.tuning.trials),
               "total_grad_evals": learning_grad_evals(run_dir) + grad_evals + int(cfg.tuning.grad_evals),
               "gpu_peak_memory_mb": peak_gpu_memory_mb(env.device), "instance": instance, "instance_part": part,
               **(extra or {})},
    )
    if cfg.trainer.plots:
        from rlopt.reporting.plots import plot_layer_lrs, plot_run  # matplotlib: imported by runs that plot

        plot_run(pd.read_csv(run_dir / "metrics.csv"), run_dir, f"{cfg.dataset.name} / {cfg.controller.name}")
        if (run_dir / "layer_lrs.csv").is_file():
            layers = pd.read_csv(run_dir / "layer_lrs.csv", dtype={"name": str})  # module paths like "0.2" stay text
            plot_layer_lrs(layers, run_dir, f"{cfg.dataset.name} / {cfg.controller.name}")
        killpoints.reach("plots")
    write_json(run_dir / "summary.json", summary)
    killpoints.reach("summary")
    log.info("%s: status=%s test_loss=%.4g test_acc=%s", run_dir, summary["status"], summary["test_loss"], summary["test_acc"])
    return summary
