"""Amortised compute of a learned controller: its learning spread over the instances it is deployed on.

A learned controller pays its learning once (L: every gradient evaluation of the `rlopt train` run that
wrote the policy, `total_grad_evals` of that run's summary.json, or of an agent's own run) and then d per
deployment (its runs' own `grad_evals`). Deployed on N instances it costs L / N + d per instance. Tuning a
baseline per instance instead costs T + b per instance (the tuned runs' `tuning_grad_evals` and own
`grad_evals`), so learning pays off from N* = L / (T + b - d) instances on (never when T + b <= d).
All costs are gradient evaluations (a SAM step counts 2), the unit every rlopt summary counts in.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from rlopt.files import read_json
from rlopt.reporting.runs import FINISHED

LEARNED_TYPES = ("sb3", "frozen")  # controller.type of a learned controller (learning, or a saved policy deployed)
COLUMNS = ["method", "learning_grad_evals", "deployments", "deploy_grad_evals", "per_deployment_grad_evals",
           "tuned_baseline", "tuning_grad_evals", "tuned_run_grad_evals", "break_even_instances"]


def learning_cost(run: pd.Series) -> float:
    """Gradient evaluations spent learning the controller of `run`: for a deployed policy, everything the run that
    wrote it spent (its summary's total_grad_evals); for an agent's own run, its total less its controlled run."""
    if run["controller_type"] == "frozen":
        summary = Path(str(run["policy"])).expanduser().parent / "summary.json"
        return float(read_json(summary)["total_grad_evals"]) if summary.is_file() else math.nan
    return float(run["total_grad_evals"]) - float(run["grad_evals"])


def amortised_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per learned method (its runs on test instances, all its runs where none is marked test), against each tuned
    baseline (runs with tuning_grad_evals > 0): learning cost, cost per deployment over its N instances, N*."""
    done = runs[runs["status"].isin(FINISHED)]
    tuned = done[pd.to_numeric(done["tuning_grad_evals"], errors="coerce").fillna(0) > 0]
    baselines = {m: (float(g["tuning_grad_evals"].mean()), float(g["grad_evals"].mean()))
                 for m, g in tuned.groupby("method", sort=True)}
    rows = []
    for method, group in done[done["controller_type"].isin(LEARNED_TYPES)].groupby("method", sort=True):
        deployed = group[group["instance_part"] == "test"] if (group["instance_part"] == "test").any() else group
        learning = float(pd.Series([learning_cost(r) for _, r in deployed.iterrows()]).mean())
        n = int(deployed["instance"].nunique()) if deployed["instance"].notna().any() else 1
        d = float(deployed["grad_evals"].mean())
        row = {"method": method, "learning_grad_evals": learning, "deployments": n, "deploy_grad_evals": d,
               "per_deployment_grad_evals": learning / n + d}
        for baseline, (tuning, run_cost) in baselines.items() or [(None, (math.nan, math.nan))]:
            saving = tuning + run_cost - d
            rows.append({**row, "tuned_baseline": baseline, "tuning_grad_evals": tuning, "tuned_run_grad_evals": run_cost,
                         "break_even_instances": learning / saving if saving > 0 else math.inf})
    return pd.DataFrame(rows, columns=COLUMNS)


def _count(x: float) -> str:
    return "-" if math.isnan(x) else "never" if math.isinf(x) else f"{x:,.0f}"


def readable_amortised(table: pd.DataFrame) -> pd.DataFrame:
    cells = [[r.method, _count(r.learning_grad_evals), str(r.deployments), _count(r.deploy_grad_evals),
              _count(r.per_deployment_grad_evals), r.tuned_baseline or "-",
              _count(r.tuning_grad_evals + r.tuned_run_grad_evals),
              "-" if r.tuned_baseline is None else ("never" if math.isinf(r.break_even_instances)
                                                    else f"{math.ceil(r.break_even_instances):,d}")]
             for r in table.itertuples()]
    return pd.DataFrame(cells, columns=["method", "learning (grad evals)", "N instances", "per run",
                                        "per deployment over N", "tuned baseline", "tuned, per instance",
                                        "break-even N"])


def caption() -> str:
    return ("Amortised compute, in gradient evaluations. Learning: what the run that learned the controller spent in "
            "all. Per deployment over N: learning / N + one run, N the instances it was deployed on here. Tuned, per "
            "instance: the tuned baseline's tuning trials plus its own run. Break-even N: the number of instances "
            "from which learning once costs less than tuning the baseline on each (never: one deployed run costs "
            "at least as much as tuning and running the baseline).")
