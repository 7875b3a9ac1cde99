"""`rlopt tune`: the study put together from the other modules of this package, and its `@hydra.main`."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import optuna
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from rlopt.errors import RunInterrupted, UserError
from rlopt.hydra_app import hydra_entry
from rlopt.paths import conf_dir
from rlopt.tune.budget import enough_trials
from rlopt.tune.final import run_final
from rlopt.tune.folder import base_overrides, tune_folder, write_tune_config
from rlopt.tune.objective import decisions_per_run, make_objective
from rlopt.tune.outputs import write_outputs
from rlopt.tune.space import METRICS, validate_tune
from rlopt.tune.storage import fail_dead_trials, open_storage

log = logging.getLogger(__name__)

RUN_GROUPS = ("dataset", "model", "controller", "reward", "experiment")  # what the best override line names


def tune(cfg: DictConfig, out_dir: Path, overrides=(), choices: dict | None = None) -> dict:
    """Run (or continue, or join) the study `cfg` describes; returns tune.json's content.

    `overrides`: the command line's overrides, for `resume=DIR` (which may change only the session
    keys) and, with `choices` (config group -> option, as Hydra chose them), for the best override line.
    """
    cfg, folder = tune_folder(cfg, out_dir, overrides)
    try:
        return _tune(cfg, folder, overrides, choices)
    except RunInterrupted as err:  # a trial was stopped: the study, not that trial's folder, is what continues
        err.run_dir = folder
        raise


def _tune(cfg: DictConfig, folder: Path, overrides, choices: dict | None) -> dict:
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


