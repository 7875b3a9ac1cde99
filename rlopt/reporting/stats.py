"""Aggregate statistics over seeds as Agarwal et al. define them, on numpy and scipy.stats.

"Deep Reinforcement Learning at the Edge of the Statistical Precipice" (NeurIPS 2021) and its
library `rliable` (rliable/metrics.py, rliable/library.py) define what is computed here; rliable
itself cannot be installed beside pandas 3 (it pins `arch<8`, which fails at import under pandas 3).

- IQM: the interquartile mean, `scipy.stats.trim_mean(scores, 0.25)` over all runs (and tasks)
  pooled, as `rliable.metrics.aggregate_iqm`.
- Stratified bootstrap: each task's runs are resampled with replacement, separately per task (a
  task keeps its own number of runs), as `rliable.library.StratifiedBootstrap`; statistics over
  several score sets (probability of improvement) resample each set independently, as
  `StratifiedIndependentBootstrap`. Intervals are percentile intervals, rliable's default method.
- Probability of improvement of X over Y: per task, P(X > Y) + 1/2 P(X = Y) over all pairs of runs,
  which is the Mann-Whitney U statistic over n_x n_y; averaged over tasks
  (`rliable.metrics.probability_of_improvement`).
- Performance profile: for each threshold tau, the fraction of runs scoring above tau, averaged over
  tasks (rliable's run-score distribution, `create_performance_profile(use_score_distribution=True)`).

Here a "task" is a dataset and a "run" one seed. Every function takes the scores of each task as a
separate array (runs first); a statistic receives them with a leading resample axis and returns one
value (or one row) per resample, so every bootstrap is a few vectorised numpy operations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import mannwhitneyu, trim_mean

CONFIDENCE = 0.95
MIN_RUNS = 5  # fewer runs than this: a point estimate without an interval (a bootstrap of 2-4 numbers says little)

Tasks = Sequence[np.ndarray]  # one array per task, runs along the first axis


def iqm(scores, axis=None):
    """Interquartile mean: the mean of the middle 50% of the scores (25% trimmed from each end)."""
    return trim_mean(scores, 0.25, axis=axis)


def pooled_iqm(tasks: Tasks) -> np.ndarray:
    """IQM over the runs of every task pooled, per resample: arrays (reps, runs, ...) -> (reps, ...)."""
    return iqm(np.concatenate(list(tasks), axis=1), axis=1)


def improvement_probability(x_tasks: Tasks, y_tasks: Tasks) -> np.ndarray:
    """P(X > Y) + 1/2 P(X = Y), the Mann-Whitney U of X over n_x n_y, averaged over tasks; per resample."""
    per_task = [mannwhitneyu(x, y, axis=1, method="asymptotic").statistic / (x.shape[1] * y.shape[1])
                for x, y in zip(x_tasks, y_tasks)]
    return np.mean(per_task, axis=0)


def score_distribution(thresholds: np.ndarray) -> Callable[[Tasks], np.ndarray]:
    """The performance-profile statistic: the fraction of runs scoring above each threshold, averaged over
    tasks; per resample (reps, len(thresholds))."""
    def profile(tasks: Tasks) -> np.ndarray:
        return np.mean([np.mean(t[..., None] > thresholds, axis=1) for t in tasks], axis=0)
    return profile


def interval(statistic: Callable[..., np.ndarray], *groups: Tasks, reps: int, seed: int):
    """(point estimate, CI low, CI high) of `statistic(*groups)` by the stratified bootstrap; the bounds
    are NaN when a task of a group has fewer than MIN_RUNS runs.

    Each group is a list of per-task score arrays; every task of every group is resampled on its own.
    A fresh generator seeded with `seed` serves each call, so an estimate does not depend on which
    other estimates a report makes, and the same scores give the same interval every time.
    """
    point = statistic(*[[np.asarray(t, dtype=float)[None] for t in tasks] for tasks in groups])[0]
    if min(len(t) for tasks in groups for t in tasks) < MIN_RUNS:
        return point, point * np.nan, point * np.nan
    rng = np.random.default_rng(seed)
    resampled = [[np.asarray(t, dtype=float)[rng.integers(0, len(t), size=(reps, len(t)))] for t in tasks]
                 for tasks in groups]
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(statistic(*resampled), [tail, 100 - tail], axis=0)
    return point, low, high
