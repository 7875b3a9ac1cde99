"""`runs.csv`: one row per run, the per-run data every table of a report is computed from.

`rlopt report` writes it first, reads it back and builds its tables from what it read, so a table is a
function of `runs.csv` (and the settings in `report.json`) by construction: anyone holding the two
files can recompute every number of every table without the run folders (`rlopt report
runs_csv=PATH`). Other readers of per-run results (an instance scorecard, a notebook) read the same
file through `read_runs`.

Columns: what the run is (dataset, `instance` and its `instance_part` (train/test; empty when the run has
none), method, seed, status,
controller and its type, the reference method the run's study declared before it ran), every
headline metric of the summary (test metrics, own `grad_evals` and `total_grad_evals`, which adds an
agent's learning runs and a tuned baseline's tuning trials), and where it came from (its folder as
given on the command line, its overrides, the error of a failed run, the policy file a frozen run deployed),
and `tuning_grad_evals` (what the amortised-compute table charges a tuned baseline).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rlopt.errors import UserError
from rlopt.reporting.runs import identity, method_labels, read_status
from rlopt.reporting.tables import METRICS

IDENTITY = ["dataset", "instance", "instance_part", "method", "seed", "status", "controller", "controller_type",
            "declared_reference"]
RUN_COLUMNS = [*IDENTITY, *METRICS, "tuning_grad_evals", "final_val_loss", "epoch_time_min", "epoch_time_max", "run",
               "overrides", "error", "policy"]
TEXT = ["dataset", "instance", "instance_part", "method", "status", "controller", "controller_type", "declared_reference",
        "run", "overrides", "error", "policy"]
SUMMARY_KEYS = [*METRICS, "instance", "instance_part", "tuning_grad_evals", "final_val_loss", "policy"]
ORDER = ["dataset", "instance", "method", "seed", "run"]


def load_runs(run_dirs: list[Path]) -> pd.DataFrame:
    """One row per run: identity and method from its config, results from its summary (or why there are none)."""
    records = []
    for run_dir in run_dirs:
        status, error, summary = read_status(run_dir)
        times = summary.get("epoch_time_s") or {}
        # the dataset trained, as the summary says: an agent learning across an instance set drew it per run
        records.append({**identity(run_dir), **({"dataset": summary["dataset"]} if "dataset" in summary else {}),
                        "status": status, "error": error, **{key: summary.get(key) for key in SUMMARY_KEYS},
                        "epoch_time_min": times.get("min"), "epoch_time_max": times.get("max")})
    for record, method in zip(records, method_labels(records)):
        record["method"] = method
        record["overrides"] = " ".join(f"{k}={v}" for k, v in record["overrides"].items())
    return _ordered(pd.DataFrame(records, columns=RUN_COLUMNS))


def _ordered(runs: pd.DataFrame) -> pd.DataFrame:
    runs = runs.astype({column: "object" for column in TEXT})
    runs[TEXT] = runs[TEXT].where(runs[TEXT].notna(), "")
    return runs.sort_values(ORDER, kind="stable", ignore_index=True)


def runs_csv(runs: pd.DataFrame) -> str:
    """The text of runs.csv (floats as Python writes them, so reading them back gives the same numbers)."""
    return runs[RUN_COLUMNS].to_csv(index=False)


def read_runs(path: Path) -> pd.DataFrame:
    """A runs.csv as the tables need it: text columns as text ("" for none), numbers as numbers."""
    runs = pd.read_csv(path, dtype={column: str for column in TEXT}, float_precision="round_trip",
                       keep_default_na=False, na_values={
        column: ["", "nan", "NaN"] for column in RUN_COLUMNS if column not in TEXT})
    missing = [column for column in RUN_COLUMNS if column not in runs.columns]
    if missing:
        raise UserError(f"runs_csv={path}: not a runs.csv of rlopt report (no column {', '.join(missing)})")
    runs["seed"] = pd.to_numeric(runs["seed"], errors="coerce").astype("Int64")
    return _ordered(runs[RUN_COLUMNS])
