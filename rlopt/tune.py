"""`rlopt tune`: an Optuna study over a baseline's hyperparameters, each trial one `rlopt train` run.

Every trial goes through `rlopt.run.experiment.run_experiment` (same loop, data split and budget as any run) into
its own compact folder `trials/NNNN/` (no plots, no checkpoints). A row observer reports the
validation metric of every decision step to the trial, and Optuna's Hyperband pruner stops the
trials that fall behind. Only validation metrics are read: the test split never informs tuning.

The tune folder holds the study (SQLite unless `tune.storage` names another storage), the
config it was started with (`tune.yaml`), `trials.csv`, `tune.json` and the best config as a
ready override line (`best_overrides.txt`) and as a full config (`best.yaml`). Several workers
pointed at one tune folder (`tune.dir`, or `resume=DIR`) share the study; a trial whose worker
died (kill -9, a cancelled job) is marked failed and run again, found at once on the same host
(its pid is gone) and elsewhere by Optuna's heartbeat (SQL storages). `final=true` then runs the
best config on the evaluation seeds, its summaries carrying the tuning compute.
"""

from __future__ import annotations

import logging
import math
import os
import random
import socket
import sqlite3
import time
import warnings
from datetime import datetime
from functools import partial
from pathlib import Path

import hydra
import numpy as np
import optuna
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError

from rlopt.config import validate_train
from rlopt.env import make_env
from rlopt.errors import UserError
from rlopt.files import atomic_path, read_json, write_json
from rlopt.hydra_app import hydra_entry
from rlopt.paths import conf_dir
from rlopt.reporting.runs import read_status
from rlopt.run.experiment import run_experiment

log = logging.getLogger(__name__)

METRICS = {"val_loss": "minimize", "val_acc": "maximize"}
# Keys that may differ between the workers and sessions of one study (everything else must match);
# tune.worker changes nothing: it is the sweep axis that starts N workers (`-m tune.worker=0,1,2,3`).
SESSION_KEYS = ("resume", "final", "tune.n_trials", "tune.budget_grad_evals", "tune.worker", "tune.dir", "tune.final_seeds",
                "trainer.progress", "trainer.device", "trainer.threads")
RUN_GROUPS = ("dataset", "model", "controller", "reward", "experiment")  # what the best override line names
MAX_ATTEMPTS = 3  # a trial whose worker dies is run again, up to this many times in all
HOST = socket.gethostname()


# -- config checks ------------------------------------------------------------------------------------
def _positive_int(value, key: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{key}={value} is not allowed: use an integer >= {minimum}")
    return value


def _number(value, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{key}={value} is not allowed: use a finite number")
    return value


def _leaves(node, prefix: str = ""):
    """(dotted config key, its {low, high, log} or {choices} spec) for every leaf of tune.space."""
    for key, value in node.items():
        path = f"{prefix}{key}"
        if not OmegaConf.is_dict(value):
            raise UserError(f"tune.space.{path}={value} is not allowed: give {{low, high, log}} or {{choices: [...]}}")
        if "choices" in value or any(k in value and not OmegaConf.is_dict(value[k]) for k in ("low", "high")):
            yield path, value
        else:
            yield from _leaves(value, f"{path}.")


def search_space(cfg: DictConfig) -> dict[str, optuna.distributions.BaseDistribution]:
    """tune.space as Optuna distributions, keyed by the config key each one sets."""
    space = {}
    for key, spec in _leaves(cfg.tune.space or {}):
        name = f"tune.space.{key}"
        current = OmegaConf.select(cfg, key, default=KeyError)
        if current is KeyError or key.split(".")[0] in ("tune", "hydra"):
            raise UserError(f"{name}: {key} is not a key of the run's config (e.g. tune.space.controller.lr)")
        unknown = set(spec) - ({"choices"} if "choices" in spec else {"low", "high", "log"})
        if unknown:
            raise UserError(f"{name} has {', '.join(sorted(unknown))}: use {{low, high, log}} or {{choices: [...]}}")
        if "choices" in spec:
            choices = spec.choices
            if not OmegaConf.is_list(choices) or len(choices) == 0:
                raise UserError(f"{name}.choices={choices} is not allowed: give a non-empty list")
            space[key] = CategoricalDistribution(list(OmegaConf.to_container(choices)))
            continue
        if "low" not in spec or "high" not in spec:
            raise UserError(f"{name} needs both low and high")
        low, high = _number(spec.low, f"{name}.low"), _number(spec.high, f"{name}.high")
        log_scale = spec.get("log", False)
        if not isinstance(log_scale, bool):
            raise UserError(f"{name}.log={log_scale} is not allowed: use true or false")
        if low >= high:
            raise UserError(f"{name}: low={low} >= high={high}; low must be below high")
        if log_scale and low <= 0:
            raise UserError(f"{name}.low={low} is not allowed with log: true; use a value > 0")
        is_int = isinstance(current, int) and not isinstance(current, bool)
        if is_int and not (float(low).is_integer() and float(high).is_integer()):
            raise UserError(f"{name}: {key} is an integer; give integer low and high")
        space[key] = (IntDistribution(int(low), int(high), log=log_scale) if is_int
                      else FloatDistribution(float(low), float(high), log=log_scale))
    if not space:
        raise UserError("tune.space is empty: give at least one key, e.g. tune.space.controller.lr={low:1e-5,high:1,log:true}")
    return space


def validate_tune(cfg: DictConfig) -> dict:
    """Every tune.* value checked before any trial runs; returns the search space."""
    t = cfg.tune
    _positive_int(t.n_trials, "tune.n_trials")
    if t.metric not in METRICS:
        raise UserError(f"tune.metric={t.metric} is not allowed: use {' or '.join(METRICS)}")
    _positive_int(t.worker, "tune.worker", minimum=0)
    _positive_int(t.seed, "tune.seed", minimum=0)
    _positive_int(t.pruner.min_resource, "tune.pruner.min_resource")
    _positive_int(t.pruner.reduction_factor, "tune.pruner.reduction_factor", minimum=2)
    _positive_int(t.heartbeat.interval, "tune.heartbeat.interval")
    if _positive_int(t.heartbeat.grace, "tune.heartbeat.grace") <= t.heartbeat.interval:
        raise UserError(f"tune.heartbeat.grace={t.heartbeat.grace} is not allowed: use more than tune.heartbeat.interval")
    if not OmegaConf.is_list(t.final_seeds) or not t.final_seeds:
        raise UserError(f"tune.final_seeds={t.final_seeds} is not allowed: give a non-empty list of seeds")
    for seed in t.final_seeds:
        _positive_int(seed, "tune.final_seeds[]", minimum=0)
    if t.budget_grad_evals is not None:
        _positive_int(t.budget_grad_evals, "tune.budget_grad_evals")
    if not isinstance(cfg.final, bool):
        raise UserError(f"final={cfg.final} is not allowed: use true or false")
    return search_space(cfg)


# -- the tune folder and its stored config ------------------------------------------------------------
def _without_session(cfg: DictConfig) -> dict:
    plain = OmegaConf.to_container(cfg, resolve=True)
    for key in SESSION_KEYS:
        *parents, leaf = key.split(".")
        node = plain
        for p in parents:
            node = node.get(p, {})
        node.pop(leaf, None)
    return plain


def _first_difference(a, b, prefix: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            found = _first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if found:
                return found
        return ""
    return "" if a == b else prefix.rstrip(".")


def tune_folder(cfg: DictConfig, out_dir: Path, overrides) -> tuple[DictConfig, Path]:
    """The effective config and the tune folder: `resume=DIR` continues DIR with its stored config (the
    command line may change only the session keys); `tune.dir` is shared by workers whose configs agree."""
    if cfg.get("resume"):
        folder = Path(cfg.resume).expanduser()
        stored = folder / "tune.yaml"
        if not stored.is_file():
            raise UserError(f"resume={cfg.resume} is not a tune folder: {stored} is missing")
        resumed = OmegaConf.load(stored)
        for override in OverridesParser.create().parse_overrides(list(overrides)):
            key = override.key_or_group
            if key == "resume" or key.startswith("hydra"):
                continue
            if key not in SESSION_KEYS:
                raise UserError(f"resume={cfg.resume} continues that tune with its own config; {key} cannot be changed "
                                f"(allowed: {', '.join(k for k in SESSION_KEYS if k != 'resume')})")
            OmegaConf.update(resumed, key, override.value(), force_add=True)
        return resumed, folder
    folder = Path(cfg.tune.dir).expanduser() if cfg.tune.dir else Path(out_dir)
    stored = folder / "tune.yaml"
    if stored.is_file():
        differs = _first_difference(_without_session(OmegaConf.load(stored)), _without_session(cfg))
        if differs:
            raise UserError(f"tune.dir={folder} holds a study with a different config ({differs} differs); "
                            f"use another tune.dir, or resume={folder}")
    return cfg, folder


def write_tune_config(cfg: DictConfig, folder: Path) -> None:
    """tune.yaml: what `resume=DIR` and joining workers continue (session keys as this worker has them)."""
    stored = OmegaConf.create(OmegaConf.to_container(cfg))
    with open_dict(stored):
        stored.resume, stored.final, stored.tune.worker = None, False, 0
    with atomic_path(folder / "tune.yaml") as tmp:
        OmegaConf.save(stored, tmp)


def base_overrides(folder: Path, overrides, choices: dict, space: dict) -> list[str]:
    """What `rlopt train` needs besides the tuned keys to run a trial's config: the config groups chosen
    (tune.yaml's own controller default included) and the tune command's other overrides of the run config
    (not tune's own keys, the session's or a tuned key's). Kept in the tune folder for the best override line."""
    path = folder / "overrides.json"
    if path.is_file():
        return read_json(path)
    given = {o.lstrip("+~").split("=", 1)[0] for o in overrides}
    keep = [f"{group}={option}" for group, option in choices.items() if group not in given and option is not None]
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        if key.split(".")[0] not in ("tune", "final", "resume", "hydra") and key not in SESSION_KEYS and key not in space:
            keep.append(override)
    write_json(path, keep)
    return keep


# -- storage ------------------------------------------------------------------------------------------
def open_storage(cfg: DictConfig, folder: Path):
    """The study's storage: SQLite in the tune folder, a SQLAlchemy URL, or a journal file (a path)."""
    spec = cfg.tune.storage
    try:
        if spec is not None and "://" not in str(spec):
            path = Path(str(spec)).expanduser()
            if not path.parent.is_dir():
                raise UserError(f"tune.storage={spec}: the folder {path.parent} does not exist")
            return JournalStorage(JournalFileBackend(str(path)))
        url = spec or f"sqlite:///{(folder / 'study.db').absolute()}"
        engine = {"creator": partial(_local_sqlite, folder / "study.db")} if spec is None else None
        for attempt in range(5):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return RDBStorage(url, engine_kwargs=engine, heartbeat_interval=int(cfg.tune.heartbeat.interval),
                                      grace_period=int(cfg.tune.heartbeat.grace), heartbeat_stale_trial_callback=repeat_trial)
            except IntegrityError:  # workers starting together both created the schema: the other one won
                if attempt == 4:
                    raise
                time.sleep(0.5 + random.random())
    except UserError:
        raise
    except Exception as err:  # SQLAlchemy, a missing database driver, the file system: each says why
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        shown = spec if spec is None or "://" not in str(spec) else _hide_password(str(spec))
        raise UserError(f"tune.storage={shown or url}: cannot open it ({type(err).__name__}: {reason})") from None


def _local_sqlite(path: Path) -> sqlite3.Connection:
    """The tune folder's SQLite in WAL mode: a trial reports every decision step, and a commit without an
    fsync each is ~1 ms instead of ~20 (WAL wants a local disk, as SQLite does anyway)."""
    # workers wait for each other's writes; the heartbeat thread shares the pool (as SQLAlchemy's own SQLite setup allows)
    connection = sqlite3.connect(path, timeout=60, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def _hide_password(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # not even a URL: say so as given
        return url


def repeat_trial(study: optuna.Study, trial) -> None:
    """Queue a trial whose worker died again with the same parameters (up to MAX_ATTEMPTS runs in all)."""
    attempt = int(trial.user_attrs.get("attempt", 1))
    if attempt >= MAX_ATTEMPTS:
        log.warning("trial %d failed %d times; not repeating it", trial.number, attempt)
        return
    study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.user_attrs.get("retry_of", trial.number),
                                                       "attempt": attempt + 1})


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError):
        return True  # someone else's process, or no pid recorded: leave it to the heartbeat
    return True


def fail_dead_trials(study: optuna.Study) -> None:
    """Fail (and queue again) the running trials of workers on this host that no longer exist."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("host") == HOST and not _alive(trial.user_attrs.get("pid")):
            try:
                study.tell(trial.number, state=TrialState.FAIL)
            except (ValueError, RuntimeError):  # another worker got there first
                continue
            log.warning("trial %d: its worker (pid %s) is gone; marked failed and queued again", trial.number,
                        trial.user_attrs.get("pid"))
            repeat_trial(study, trial)


# -- trials -------------------------------------------------------------------------------------------
def run_config(cfg: DictConfig, params: dict) -> DictConfig:
    """A plain `rlopt train` config from the tune config with `params` set (tune's own keys removed)."""
    run = OmegaConf.create(OmegaConf.to_container(cfg))
    with open_dict(run):
        for key in ("tune", "final", "resume"):
            run.pop(key, None)
        run.resume = None
        for key, value in params.items():
            OmegaConf.update(run, key, value)
    return run


def _suggest(trial: optuna.Trial, key: str, dist):
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(key, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(key, dist.low, dist.high, log=dist.log)
    return trial.suggest_float(key, dist.low, dist.high, log=dist.log)


def trial_sampler(seed: int, number: int) -> optuna.samplers.TPESampler:
    """TPE seeded by (tune.seed, trial number): a trial's draws depend on its place in the study, not on
    how many trials this process ran, so a resumed or second worker never replays the first one's draws."""
    return optuna.samplers.TPESampler(seed=int(np.random.SeedSequence([seed, number]).generate_state(1)[0]))


def rung_steps(cfg: DictConfig, max_resource: int) -> set[int]:
    """The decision steps where Hyperband's rungs lie (min_resource x reduction_factor^k, every bracket): the
    pruner's answer can change only there, and asking it reads the whole trial from the storage."""
    first, factor = int(cfg.tune.pruner.min_resource), int(cfg.tune.pruner.reduction_factor)
    steps = set()
    while first <= max_resource:
        steps.add(first)
        first *= factor
    return steps


def make_objective(cfg: DictConfig, folder: Path, space: dict, max_resource: int):
    metric = str(cfg.tune.metric)
    worst = math.inf if METRICS[metric] == "minimize" else -math.inf
    ask_at = rung_steps(cfg, max_resource)

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("host", HOST)
        trial.set_user_attr("pid", os.getpid())
        trial.study.sampler = trial_sampler(int(cfg.tune.seed), trial.number)  # TPE keeps no state but its RNG
        params = {key: _suggest(trial, key, dist) for key, dist in space.items()}
        run_cfg = run_config(cfg, params)
        with open_dict(run_cfg):
            run_cfg.trainer.plots, run_cfg.trainer.progress = False, False
            run_cfg.checkpoint.every = 0  # a trial cut short is repeated from the start, never resumed
        run_dir = folder / "trials" / f"{trial.number:04d}"
        run_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(run_cfg, run_dir / "config.yaml")
        last = {}

        def observe(row: dict) -> None:
            value = row[metric]
            if value is None:
                raise UserError(f"tune.metric={metric} is not allowed for {run_cfg.dataset.name} (no accuracy): use val_loss")
            last["value"] = float(value)
            trial.report(float(value), int(row["step"]))
            if int(row["step"]) in ask_at and trial.should_prune():
                raise optuna.TrialPruned(f"pruned at decision step {row['step']} ({metric}={value:.4g})")

        try:
            run_experiment(run_cfg, run_dir, observers=[observe])
        except optuna.TrialPruned:
            summary = run_dir / "summary.json"
            write_json(summary, {**read_json(summary), "status": "pruned"})
            raise
        except KeyboardInterrupt:
            repeat_trial(trial.study, trial)  # an interrupted trial is run again on resume
            raise
        value = last.get("value", worst)
        return value if math.isfinite(value) else worst  # a diverged run is the worst result, not a failure

    return objective


def decisions_per_run(cfg: DictConfig, space: dict) -> int:
    """Hyperband's max_resource: the decision steps of one run, the same for every trial (read from the
    environment, which loads the data once; Optuna's "auto" would leave the first trial out of the rungs)."""
    run_cfg = run_config(cfg, {key: dist.to_external_repr(dist.to_internal_repr(
        dist.choices[0] if isinstance(dist, CategoricalDistribution) else dist.low)) for key, dist in space.items()})
    validate_train(run_cfg)
    return int(make_env(run_cfg).decisions_per_episode)


def spent_grad_evals(run_dir: Path) -> int:
    """Gradient evaluations a trial spent, from its metrics.csv (also for one cut short by kill -9)."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return 0
    evals = pd.to_numeric(pd.read_csv(path, usecols=["grad_evals"], on_bad_lines="skip")["grad_evals"], errors="coerce")
    return int(evals.max()) if evals.notna().any() else 0


def trials_grad_evals(study: optuna.Study, folder: Path) -> int:
    """Gradient evaluations spent by every trial that started: finished, pruned and failed ones up to where
    they stopped, running ones so far (read from each trial's metrics.csv, as trials.csv is)."""
    started = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL,
                                                       TrialState.RUNNING))
    return sum(spent_grad_evals(folder / "trials" / f"{t.number:04d}") for t in started)


def enough_trials(study: optuna.Study, n_trials: int, folder: Path, budget: int | None = None) -> bool:
    """Whether a worker may start no more trials: the finished (completed, pruned) and running trials reach
    n_trials, or (with a budget) every started trial's gradient evaluations reach `budget`. Checked only
    between trials, so several workers stop together instead of each overshooting by one, and a trial once
    started runs to its end or its pruning: the tuning may overshoot the budget by less than one run's
    gradient evaluations per worker running when it is reached."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # a dead worker's trial is not running (it is queued again)
    counted = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
    return len(counted) >= n_trials or (budget is not None and trials_grad_evals(study, folder) >= budget)


# -- outputs ------------------------------------------------------------------------------------------
def trials_table(study: optuna.Study, folder: Path) -> pd.DataFrame:
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.WAITING:
            continue
        run_dir = folder / "trials" / f"{t.number:04d}"
        rows.append({
            "number": t.number, "state": t.state.name.lower().replace("fail", "failed"),
            "value": t.value, **{f"param.{k}": v for k, v in t.params.items()},
            "grad_evals": spent_grad_evals(run_dir),
            "wall_time_s": _wall_time(t, run_dir),
            "last_step": t.last_step, "retry_of": t.user_attrs.get("retry_of"), "run": str(run_dir.relative_to(folder)),
            "worker": f"{t.user_attrs.get('host')}:{t.user_attrs.get('pid')}",
        })
    table = pd.DataFrame(rows)
    for column in ("last_step", "retry_of"):
        if column in table:
            table[column] = table[column].astype("Int64")
    return table


def _wall_time(trial, run_dir: Path) -> float | None:
    """A trial's duration; for one whose worker died, until its last metrics row (not until it was found dead)."""
    if trial.state == TrialState.FAIL and (run_dir / "metrics.csv").is_file() and trial.datetime_start:
        return (datetime.fromtimestamp((run_dir / "metrics.csv").stat().st_mtime) - trial.datetime_start).total_seconds()
    return trial.duration.total_seconds() if trial.duration else None


def write_outputs(study: optuna.Study, cfg: DictConfig, folder: Path, overrides: list[str]) -> dict:
    """trials.csv, tune.json and (once a trial completed) best.yaml and best_overrides.txt, from the storage."""
    table = trials_table(study, folder)
    with atomic_path(folder / "trials.csv") as tmp:
        table.to_csv(tmp, index=False)
    counts = table["state"].value_counts().to_dict() if len(table) else {}
    ran = table[table["state"] != "running"] if len(table) else table
    info = {"metric": cfg.tune.metric, "direction": METRICS[cfg.tune.metric], "n_trials": int(cfg.tune.n_trials),
            "budget_grad_evals": cfg.tune.budget_grad_evals,
            "trials": {s: int(counts.get(s, 0)) for s in ("complete", "pruned", "failed", "running")},
            "tuning_trials": len(ran), "tuning_grad_evals": int(ran["grad_evals"].sum()) if len(ran) else 0,
            "best": None}
    completed = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if completed:
        best = study.best_trial
        line = [*overrides, *(f"{k}={v}" for k, v in best.params.items()),
                f"tuning.grad_evals={info['tuning_grad_evals']}", f"tuning.trials={info['tuning_trials']}"]
        info["best"] = {"number": best.number, "value": best.value, "params": best.params, "overrides": " ".join(line)}
        (folder / "best_overrides.txt").write_text(" ".join(line) + "\n")
        with atomic_path(folder / "best.yaml") as tmp:
            OmegaConf.save(best_config(cfg, best.params, info), tmp)
    write_json(folder / "tune.json", info)
    return info


def best_config(cfg: DictConfig, params: dict, info: dict) -> DictConfig:
    best = run_config(cfg, params)
    with open_dict(best):
        best.tuning = {"grad_evals": info["tuning_grad_evals"], "trials": info["tuning_trials"]}
    return best


def run_final(cfg: DictConfig, folder: Path, info: dict) -> list[dict]:
    """The best config on every evaluation seed, into final/s<seed>/ (a finished one is kept, an
    interrupted one continues from its checkpoint)."""
    if info["best"] is None:
        raise UserError("final=true: no trial has completed, so there is no best config to run")
    summaries = []
    for seed in cfg.tune.final_seeds:
        run_dir = folder / "final" / f"s{seed}"
        status, _, summary = read_status(run_dir) if (run_dir / "summary.json").is_file() else ("incomplete", None, {})
        if status in ("completed", "diverged"):
            summaries.append(summary)
            continue
        run_cfg = best_config(cfg, info["best"]["params"], info)
        with open_dict(run_cfg):
            run_cfg.seed = int(seed)
            run_cfg.label = run_cfg.label or f"tuned {run_cfg.controller.name}"  # one method name for every seed
        hydra_dir = run_dir / ".hydra"  # what `rlopt report` and `rlopt train resume=` read
        hydra_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(run_cfg, hydra_dir / "config.yaml")
        OmegaConf.save(OmegaConf.create([*info["best"]["overrides"].split(), f"seed={seed}"]), hydra_dir / "overrides.yaml")
        summaries.append(run_experiment(run_cfg, run_dir))
    return summaries


# -- the command ----------------------------------------------------------------------------------------
def tune(cfg: DictConfig, out_dir: Path, overrides=(), choices: dict | None = None) -> dict:
    """Run (or continue, or join) the study `cfg` describes; returns tune.json's content.

    `overrides`: the command line's overrides, for `resume=DIR` (which may change only the session
    keys) and, with `choices` (config group -> option, as Hydra chose them), for the best override line.
    """
    cfg, folder = tune_folder(cfg, out_dir, overrides)
    space = validate_tune(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    storage = open_storage(cfg, folder)
    write_tune_config(cfg, folder)
    overrides = base_overrides(folder, overrides, choices or {}, space)
    max_resource = decisions_per_run(cfg, space)
    pruner = optuna.pruners.HyperbandPruner(min_resource=int(cfg.tune.pruner.min_resource), max_resource=max_resource,
                                            reduction_factor=int(cfg.tune.pruner.reduction_factor))
    study = optuna.create_study(storage=storage, study_name=str(cfg.tune.study_name), pruner=pruner,
                                direction=METRICS[cfg.tune.metric], load_if_exists=True)
    if study.direction.name.lower() != METRICS[cfg.tune.metric]:
        raise UserError(f"tune.metric={cfg.tune.metric}: the stored study {cfg.tune.study_name} was started with the "
                        f"other metric; use another tune.study_name")
    fail_dead_trials(study)
    n_trials, budget = int(cfg.tune.n_trials), cfg.tune.budget_grad_evals
    if not enough_trials(study, n_trials, folder, budget):
        log.info("tune folder %s: study %s, %d trials to finish%s", folder, cfg.tune.study_name, n_trials,
                 "" if budget is None else f" or {budget} gradient evaluations to spend")
        try:
            study.optimize(make_objective(cfg, folder, space, max_resource), n_trials=None, callbacks=[
                lambda s, t: write_outputs(s, cfg, folder, overrides),
                lambda s, t: s.stop() if enough_trials(s, n_trials, folder, budget) else None])
        except BaseException:  # an error or Ctrl-C: the table still shows what ran
            write_outputs(study, cfg, folder, overrides)
            raise
    info = write_outputs(study, cfg, folder, overrides)
    if cfg.final:
        info["final"] = [{k: s.get(k) for k in ("seed", "status", "total_grad_evals")} for s in run_final(cfg, folder, info)]
    log.info("tune folder %s: best %s", folder, info["best"])
    return info


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="tune")
def main(cfg: DictConfig) -> None:
    hc = HydraConfig.get()
    overrides = list(hc.overrides.task)
    choices = {group: hc.runtime.choices.get(group) for group in RUN_GROUPS}
    hydra_entry("tune", cfg, lambda c, out_dir: tune(c, out_dir, overrides, choices))


if __name__ == "__main__":
    main()
