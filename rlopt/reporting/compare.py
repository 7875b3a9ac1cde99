"""Methods against a reference: probability of improvement per dataset, and aggregates over datasets.

Each finished run has one score per dataset: its test accuracy, or, for a regression dataset (no
accuracy), its test loss with the sign turned so that higher is better everywhere. The reference
on a dataset is `report.reference` when given, else the one the runs' study declared in its preset
before they ran (`reference`), else the fixed baseline (a fixed optimizer or schedule) with the
highest IQM score there; that last one is picked after looking at the same scores it is compared on
(with ten identical methods, about two of the other nine look worse than the best-looking one by
chance), so the tables say so. Across datasets, scores are first normalised per
dataset between a low reference (`report.low`, default `random`; without it, the dataset's worst
run) at 0 and the reference at 1, so that datasets with different scales can be pooled.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from rlopt.errors import UserError
from rlopt.reporting.runs import FINISHED
from rlopt.reporting.stats import CONFIDENCE, improvement_probability, interval, iqm, pooled_iqm
from rlopt.reporting.tables import FEW, numbers

BASELINE_TYPES = ("fixed", "schedule")  # controller.type of a fixed baseline
PROBABILITY = "P(method > reference)"


def scores(runs: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """(dataset, instance, instance_part, seed, method, controller_type, score) of every finished run with a finite
    score, and the name of each dataset's score. Runs without one (a diverged regression run's loss) are left out
    here; the summary table counts them."""
    frames, names = [], {}
    for dataset, group in runs[runs["status"].isin(FINISHED)].groupby("dataset", sort=True):
        accuracy = numbers(group["test_acc"])
        if len(accuracy):
            names[dataset], score = "test accuracy", accuracy
        else:
            names[dataset], score = "test loss (lower is better)", -numbers(group["test_loss"])
        frames.append(group.loc[score.index, ["dataset", "instance", "instance_part", "seed", "method",
                                              "controller_type"]].assign(score=score))
    columns = ["dataset", "instance", "instance_part", "seed", "method", "controller_type", "score"]
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)), names


def _by_method(data: pd.DataFrame) -> dict[str, np.ndarray]:
    return {method: group["score"].to_numpy(dtype=float) for method, group in data.groupby("method", sort=True)}


def references(scored: pd.DataFrame, reference: str | None) -> dict[str, str]:
    """dataset -> its reference method (datasets where `reference` has no runs are left out)."""
    if reference is not None:
        reference = str(reference)
        found = {d: reference for d, data in scored.groupby("dataset", sort=True) if reference in set(data["method"])}
        if not found:
            available = ", ".join(sorted(set(scored["method"]))) or "none"
            raise UserError(f"report.reference={reference}: no finished runs of that method; available: {available}")
        return found
    chosen = {}
    for dataset, data in scored.groupby("dataset", sort=True):
        baselines = data[data["controller_type"].isin(BASELINE_TYPES)]
        by_iqm = {method: float(iqm(x)) for method, x in _by_method(baselines if len(baselines) else data).items()}
        chosen[dataset] = max(sorted(by_iqm), key=by_iqm.get)
    return chosen


def chosen_reference(runs: pd.DataFrame, given: str | None) -> tuple[str | None, str]:
    """(reference method or None, where it comes from): `report.reference`, else what the runs' study
    declared (`reference` in its preset), else None (the best fixed baseline is picked per dataset)."""
    if given is not None:
        return str(given), "report.reference"
    declared = sorted(set(runs["declared_reference"]) - {""})
    if len(declared) > 1:
        raise UserError(f"the runs declare different references ({', '.join(declared)}): "
                        f"choose one with report.reference=METHOD")
    return (declared[0], "declared") if declared else (None, "post hoc")


def reference_rule(reference: str | None, source: str) -> str:
    if source == "report.reference":
        return f"`{reference}` (report.reference)"
    if source == "declared":
        return f"`{reference}` (declared by the study before its runs: `reference` in its preset)"
    return ("the fixed baseline with the highest IQM, picked after seeing these scores (no reference declared: "
            "exploratory, it favours finding differences)")


def _estimate(statistic, *groups, reps: int, seed: int) -> tuple[float, float, float]:
    return tuple(float(v) for v in interval(statistic, *groups, reps=reps, seed=seed))


def improvement_table(scored: pd.DataFrame, refs: dict[str, str], reps: int, seed: int) -> pd.DataFrame:
    """Every method against its dataset's reference: P(X > Y) + 1/2 P(X = Y) with its interval."""
    rows = []
    for dataset, data in scored.groupby("dataset", sort=True):
        if dataset not in refs:
            continue
        held_out = data["instance_part"].astype(str) == "test"
        if held_out.any():  # an instance set's held-out instances: the comparison the set is for
            data = data[held_out]
        for method in sorted(set(data["method"])):
            x, y = _paired(data, method, refs[dataset])
            if not x:  # no instance in common with the reference
                continue
            p, low, high = _estimate(improvement_probability, x, y, reps=reps, seed=seed)
            rows.append({"dataset": dataset, "method": method, "n": sum(map(len, x)), "reference": refs[dataset],
                         "n_reference": sum(map(len, y)), "p_improvement": p, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=["dataset", "method", "n", "reference", "n_reference", "p_improvement", "ci_low",
                                       "ci_high"])


def instances_of(data: pd.DataFrame) -> set[str]:
    return {str(i) for i in data["instance"] if not pd.isna(i) and str(i) != ""}


def _paired(data: pd.DataFrame, method: str, reference: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The method's and the reference's scores as tasks: one each, or, for runs of an instance set, one per
    instance both ran on (a score on one instance says nothing against a score on another: pooled runs would
    compare the instance mixes); the probability is then the mean over those instances."""
    mine, ref = data[data["method"] == method], data[data["method"] == reference]
    mine_on, ref_on = instances_of(mine), instances_of(ref)
    if not (mine_on or ref_on):
        return [mine["score"].to_numpy(dtype=float)], [ref["score"].to_numpy(dtype=float)]
    common = sorted(mine_on & ref_on)
    return ([mine.loc[mine["instance"].astype(str) == i, "score"].to_numpy(dtype=float) for i in common],
            [ref.loc[ref["instance"].astype(str) == i, "score"].to_numpy(dtype=float) for i in common])


def normalise(scored: pd.DataFrame, refs: dict[str, str], low: str | None) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Scores mapped per dataset so the low reference's IQM is 0 and the reference's IQM 1, and how each
    dataset was normalised. Datasets without a reference, or where the two coincide, are left out."""
    frames, how = [], {}
    for dataset, data in scored.groupby("dataset", sort=True):
        if dataset not in refs:
            continue
        methods = _by_method(data)
        high = float(iqm(methods[refs[dataset]]))
        if low in methods and low != refs[dataset]:
            floor, floor_from = float(iqm(methods[low])), f"IQM of {low}"
        else:
            floor, floor_from = float(data["score"].min()), "worst run"
        if high == floor:
            continue
        how[dataset] = {"low": floor, "low_from": floor_from, "high": high, "high_from": f"IQM of {refs[dataset]}"}
        frames.append(data.assign(score=(data["score"] - floor) / (high - floor)))
    return (pd.concat(frames, ignore_index=True) if frames else scored.iloc[:0]), how


def aggregate_table(normalised: pd.DataFrame, scored: pd.DataFrame, refs: dict[str, str], reps: int,
                    seed: int) -> pd.DataFrame:
    """Per method over the datasets it ran on: IQM of the normalised scores (runs of all datasets pooled,
    stratified bootstrap), and the probability of improvement averaged over those datasets. Empty unless
    several datasets could be normalised."""
    rows = []
    for method in sorted(set(normalised["method"])) if normalised["dataset"].nunique() > 1 else []:
        mine = normalised[normalised["method"] == method]
        datasets = sorted(set(mine["dataset"]))
        tasks = [mine.loc[mine["dataset"] == d, "score"].to_numpy(dtype=float) for d in datasets]
        point, low, high = _estimate(pooled_iqm, tasks, reps=reps, seed=seed)
        pick = {d: scored[scored["dataset"] == d] for d in datasets}
        x = [pick[d].loc[pick[d]["method"] == method, "score"].to_numpy(dtype=float) for d in datasets]
        y = [pick[d].loc[pick[d]["method"] == refs[d], "score"].to_numpy(dtype=float) for d in datasets]
        p, p_low, p_high = _estimate(improvement_probability, x, y, reps=reps, seed=seed)
        rows.append({"method": method, "datasets": len(datasets), "n": int(sum(map(len, tasks))),
                     "normalised_iqm": point, "ci_low": low, "ci_high": high,
                     "p_improvement": p, "p_ci_low": p_low, "p_ci_high": p_high})
    return pd.DataFrame(rows, columns=["method", "datasets", "n", "normalised_iqm", "ci_low", "ci_high", "p_improvement",
                                       "p_ci_low", "p_ci_high"])


def estimate(point: float, low: float, high: float, spec: str = ".2f") -> str:
    """`point [low, high]`, or `point †` without an interval."""
    if math.isnan(point):
        return "-"
    return f"{point:{spec}} {FEW}" if math.isnan(low) else f"{point:{spec}} [{low:{spec}}, {high:{spec}}]"


def readable_improvement(table: pd.DataFrame) -> pd.DataFrame:
    cells = [[r.dataset, r.method, str(r.n), r.reference, str(r.n_reference), estimate(r.p_improvement, r.ci_low, r.ci_high)]
             for r in table.itertuples()]
    return pd.DataFrame(cells, columns=["dataset", "method", "n", "reference", "n ref", f"{PROBABILITY} [95% CI]"])


def readable_aggregate(table: pd.DataFrame) -> pd.DataFrame:
    cells = [[r.method, str(r.datasets), str(r.n), estimate(r.normalised_iqm, r.ci_low, r.ci_high),
              estimate(r.p_improvement, r.p_ci_low, r.p_ci_high)] for r in table.itertuples()]
    return pd.DataFrame(cells, columns=["method", "datasets", "n", "normalised score IQM [95% CI]",
                                        f"{PROBABILITY} [95% CI]"])


def improvement_caption(names: dict[str, str], refs: dict[str, str], reference: str | None, source: str, reps: int,
                        seed: int, instances: bool = False) -> str:
    scored_on = "; ".join(f"{d}: {name}" for d, name in names.items())
    chosen = "; ".join(f"{d}: {method}" for d, method in refs.items())
    missing = [d for d in names if d not in refs]
    return (f"Probability of improvement (Agarwal et al. 2021): P(X > Y) + 0.5 P(X = Y) over every pair of a run of the "
            f"method (X) and a run of the reference (Y), i.e. the Mann-Whitney U over n_x n_y; 0.5 = no difference. "
            f"Score: {scored_on}. Reference, {reference_rule(reference, source)}: {chosen}"
            + (f" (no runs of it on {', '.join(missing)}, left out)" if missing else "") + ". "
            f"{CONFIDENCE:.0%} CI: percentile interval of a bootstrap resampling both methods' runs independently "
            f"({reps} resamples, seed {seed})."
            + (" Runs of an instance set: per instance both the method and the reference ran on (its test instances "
               "where it has any), averaged over those instances (n counts their runs there); the bootstrap resamples "
               "runs within each instance."
               if instances else ""))


def aggregate_caption(how: dict[str, dict], low: str | None) -> str:
    per = "; ".join(f"{d}: 0 = {h['low_from']} ({h['low']:.4g}), 1 = {h['high_from']} ({h['high']:.4g})"
                    for d, h in how.items())
    return (f"Over datasets: each dataset's scores (accuracy; minus the test loss for regression) normalised to 0 at "
            f"the low reference ({low or 'none'}; the worst run where it has no runs) and 1 at the reference ({per}); "
            f"the IQM pools the runs of all datasets, its interval resamples runs within each dataset (stratified "
            f"bootstrap); the probability of improvement is the mean of the per-dataset probabilities (it does not "
            f"depend on the normalisation).")
