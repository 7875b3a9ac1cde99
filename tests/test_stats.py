"""rlopt.reporting.stats on hand-made numbers: the definitions of Agarwal et al. (rliable), exactly."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm, trim_mean

from rlopt.reporting.stats import MIN_RUNS, improvement_probability, interval, iqm, pooled_iqm, score_distribution


def test_iqm_is_the_25_percent_trimmed_mean():
    x = np.array([7.0, 1.0, 100.0, 3.0, 4.0, 6.0, 2.0, 5.0])
    assert iqm(x) == trim_mean(x, 0.25) == 4.5  # the middle four of 1..7, 100: 3, 4, 5, 6
    # pooled over tasks, as rliable's aggregate_iqm: all runs of all tasks together
    assert pooled_iqm([x[None, :4], x[None, 4:]])[0] == pytest.approx(4.5)


def test_interval_contains_the_estimate_and_shrinks_with_more_seeds():
    widths = []
    for n in (5, 20, 80):
        x = 0.9 + 0.02 * norm.ppf((np.arange(n) + 0.5) / n)  # the same spread at every n, without sampling luck
        point, low, high = interval(pooled_iqm, [x], reps=2000, seed=0)
        assert point == pytest.approx(trim_mean(x, 0.25)) and low <= point <= high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2] > 0
    # the same scores and seed give the same interval; another seed another one
    x = np.random.default_rng(0).normal(0.9, 0.02, 8)
    assert interval(pooled_iqm, [x], reps=500, seed=3) == interval(pooled_iqm, [x], reps=500, seed=3)
    assert interval(pooled_iqm, [x], reps=500, seed=3) != interval(pooled_iqm, [x], reps=500, seed=4)
    # below MIN_RUNS runs: the estimate, and no interval from so few numbers
    point, low, high = interval(pooled_iqm, [x[:MIN_RUNS - 1]], reps=500, seed=3)
    assert point == pytest.approx(trim_mean(x[:MIN_RUNS - 1], 0.25)) and np.isnan(low) and np.isnan(high)


def test_stratified_bootstrap_resamples_within_each_task():
    # two tasks far apart: a resample that mixed runs across tasks would move the pooled IQM's spread
    low_task, high_task = np.array([0.0, 0.0, 0.0, 0.0, 0.0]), np.array([1.0, 1.0, 1.0, 1.0, 1.0])
    assert interval(pooled_iqm, [low_task, high_task], reps=300, seed=0) == (0.5, 0.5, 0.5)


def test_probability_of_improvement():
    x = np.array([0.91, 0.93, 0.95, 0.97, 0.99])
    one = lambda a, b: float(improvement_probability([a[None]], [b[None]])[0])  # noqa: E731
    assert one(x, x) == 0.5
    assert one(x + 1, x) == 1.0 and one(x, x + 1) == 0.0
    assert one(np.array([3.0, 4.0]), np.array([1.0, 3.0])) == 0.875  # (3 wins + 1/2 tie) / 4 pairs
    point, low, high = interval(improvement_probability, [x + 1], [x], reps=500, seed=0)
    assert (point, low, high) == (1.0, 1.0, 1.0)
    point, low, high = interval(improvement_probability, [x], [x], reps=500, seed=0)
    assert point == 0.5 and low < 0.5 < high
    # over tasks: the mean of the per-task probabilities
    assert improvement_probability([(x + 1)[None], x[None]], [x[None], (x + 1)[None]])[0] == 0.5


def test_performance_profile_is_the_fraction_of_runs_above_each_threshold():
    profile = score_distribution(np.array([0.0, 0.5, 1.0]))
    assert profile([np.array([[0.1, 0.5, 0.9]])])[0].tolist() == pytest.approx([1.0, 1 / 3, 0.0])
    # averaged over tasks, each task weighing the same whatever its number of runs
    assert profile([np.array([[0.9]]), np.array([[0.1, 0.2, 0.6, 0.7]])])[0].tolist() == pytest.approx([1.0, 0.75, 0.0])


# The calibration of the report's two decision aids, measured by simulation and stated in
# docs/guide/statistics.md (this test checks the two agree): how often the 95% IQM interval holds the
# true IQM, and how often "the probability-of-improvement interval excludes 0.5" fires between two
# methods that do not differ. Scores: normal, so the true IQM is the mean; TRIALS studies per seed count.
TRIALS, REPS = 400, 1000
GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guide" / "statistics.md"


def calibration(n: int) -> tuple[float, float]:
    """(coverage of the IQM interval, false-positive rate of the POI rule) over TRIALS simulated studies of n seeds."""
    rng = np.random.default_rng(n)
    covered = fired = 0
    for trial in range(TRIALS):
        x, y = rng.normal(0.0, 1.0, (2, n))
        _, low, high = interval(pooled_iqm, [x], reps=REPS, seed=trial)
        covered += low <= 0.0 <= high
        _, p_low, p_high = interval(improvement_probability, [x], [y], reps=REPS, seed=trial)
        fired += p_low > 0.5 or p_high < 0.5
    return covered / TRIALS, fired / TRIALS


def test_interval_coverage_and_false_positives_are_as_the_guide_states():
    stated = {int(m[1]): (float(m[2]), float(m[3]))
              for m in re.finditer(r"^\| (\d+) seeds \| (0\.\d+) \| (0\.\d+) \|", GUIDE.read_text(), re.M)}
    assert set(stated) == {5, 10}, "docs/guide/statistics.md must state both rows"
    for n, (coverage, false_positives) in stated.items():
        measured = calibration(n)
        assert measured == pytest.approx((coverage, false_positives), abs=1e-9), (n, measured)
    # what the numbers mean for a reader: at 5 seeds the interval covers less than its nominal 95%
    assert stated[5][0] < 0.95 and stated[5][1] > 0.05


def test_improvement_over_an_instance_set_compares_runs_of_the_same_instance():
    """A method equal to the reference on every instance, run on another mix of instances: pooled runs would
    favour whichever ran more on the easy instance; paired per instance it is 0.5, and an instance only one
    of them ran on is left out."""
    import pandas as pd

    from rlopt.reporting.compare import improvement_table

    easy, hard = [0.9, 0.91, 0.92], [0.1, 0.11, 0.12]
    rows = ([("ref", "easy", s) for s in easy] + [("ref", "hard", s) for s in hard]
            + [("agent", "easy", s) for s in easy] + [("agent", "only_agent", 0.99)])
    scored = pd.DataFrame([{"dataset": "d", "instance": i, "instance_part": "", "seed": n, "method": m,
                            "controller_type": "sb3", "score": s} for n, (m, i, s) in enumerate(rows)])
    table = improvement_table(scored, {"d": "ref"}, reps=200, seed=0).set_index("method")
    assert table.loc["agent", "p_improvement"] == 0.5  # pooled over its instances it would be (9 + 1.5) / 12 or more
    assert table.loc["agent", "n"] == 3 and table.loc["agent", "n_reference"] == 3  # easy only: the instance in common
    # where the set has test instances, only they count (the train instances picked the SBS)
    parted = scored.assign(instance_part=["test" if i == "hard" else "train" for i in scored["instance"]])
    assert "agent" not in set(improvement_table(parted, {"d": "ref"}, reps=200, seed=0)["method"])  # no test run of its
    # without instances (a study on one task) the runs are one task, as before
    plain = scored.assign(instance=float("nan"))
    assert improvement_table(plain, {"d": "ref"}, reps=200, seed=0).set_index("method").loc["agent", "n"] == 4
