"""One trial: its config (the tune config with the drawn values set), its run through the training loop
into `trials/NNNN/`, and Hyperband pruning on the validation metric of each decision step."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import optuna
from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.distributions import CategoricalDistribution, IntDistribution

from rlopt.config import validate_train
from rlopt.controllers import run_controller
from rlopt.env import make_env
from rlopt.errors import UserError
from rlopt.files import read_json, write_json
from rlopt.run.experiment import run_experiment  # the run lifecycle: every trial and final run (tune's one import of it)
from rlopt.tune.space import METRICS
from rlopt.tune.storage import HOST, repeat_trial


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
            run_experiment(run_cfg, run_dir, run_controller, observers=[observe])
        except optuna.TrialPruned:
            summary = run_dir / "summary.json"
            write_json(summary, {**read_json(summary), "status": "pruned"})
            raise
        except KeyboardInterrupt:  # Optuna fails the trial: queue it again. (SIGINT/SIGTERM in the run raise
            repeat_trial(trial.study, trial)  # RunInterrupted, which leaves it running: resume repeats it as a dead worker's)
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


