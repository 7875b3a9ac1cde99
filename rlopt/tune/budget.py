"""When a worker may start no more trials: the trial count, or the gradient evaluations spent."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState


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


