"""Report tables: per dataset x method statistics over seeds, written as CSV, Markdown and LaTeX.

The CSV keeps raw numbers (fractions, seconds, counts) for further analysis; Markdown and LaTeX
show `mean ± std` text for reading. std is the sample standard deviation (n - 1) and is left out
when a method has a single finished run. Every dataset x method that has runs gets a row, even
when none of them finished, so a failure is visible where the result would be.
"""

from __future__ import annotations

import math

import pandas as pd

from rlopt.reporting.runs import FINISHED

# summary.json key -> (column title, scale, format spec) for the readable tables
METRICS = {
    "test_acc": ("test acc (%)", 100, ".2f"),
    "test_f1": ("F1 (%)", 100, ".2f"),
    "test_precision": ("precision (%)", 100, ".2f"),
    "test_recall": ("recall (%)", 100, ".2f"),
    "test_loss": ("test loss", 1, ".3g"),
    "converged_epoch": ("converged epoch", 1, ".1f"),
    "grad_evals": ("grad evals", 1, ",.0f"),
    "wall_time_s": ("wall time (s)", 1, ".1f"),
}


def _groups(runs: pd.DataFrame):
    """(dataset, method, its finished runs, counts of the others), sorted."""
    for (dataset, method), group in runs.groupby(["dataset", "method"], sort=True):
        done = group[group["status"].isin(FINISHED)]
        incomplete = int((group["status"] == "incomplete").sum())
        yield dataset, method, done, {"failed": len(group) - len(done) - incomplete, "incomplete": incomplete}


def _numbers(values: pd.Series) -> pd.Series:
    """Finite numbers only: a diverged run's inf/NaN losses must not poison a mean."""
    x = pd.to_numeric(values, errors="coerce").astype(float)
    return x[x.map(math.isfinite)]


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """dataset x method: n finished, counts of diverged, failed and incomplete runs, mean/std of each
    metric over the finished runs, and the epoch time range."""
    rows = []
    for dataset, method, done, others in _groups(runs):
        row = {"dataset": dataset, "method": method, "n": len(done), "diverged": int((done["status"] == "diverged").sum()),
               **others}
        for metric in METRICS:
            values = _numbers(done[metric])
            row[f"{metric}_mean"], row[f"{metric}_std"] = values.mean(), values.std(ddof=1)  # NaN when too few
        row["epoch_time_min"] = _numbers(done["epoch_time_min"]).min()
        row["epoch_time_max"] = _numbers(done["epoch_time_max"]).max()
        rows.append(row)
    return pd.DataFrame(rows)


def loss_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The learning-rate study's table: best and average final validation loss over the runs that
    did not diverge, and whether a divergent case exists among the method's runs."""
    rows = []
    for dataset, method, done, others in _groups(runs):
        final = _numbers(done.loc[done["status"] == "completed", "final_val_loss"])
        rows.append({"dataset": dataset, "method": method, "n": len(done), **others,
                     "best_final_loss": final.min(), "avg_final_loss": final.mean(),
                     "divergent_case": bool((done["status"] == "diverged").any())})
    return pd.DataFrame(rows)


def _mean_std(mean: float, std: float, scale: float, spec: str) -> str:
    if math.isnan(mean):
        return "-"
    shown = format(mean * scale, spec)
    return shown if math.isnan(std) else f"{shown} ± {format(std * scale, spec)}"


def _notes(row) -> str:
    notes = [f"{row[k]} {k}" for k in ("diverged", "failed", "incomplete") if row.get(k)]
    return ", ".join(notes)


def readable_summary(table: pd.DataFrame) -> pd.DataFrame:
    """The summary table as text cells under readable column titles."""
    headers = ["dataset", "method", "n", *(title for title, _, _ in METRICS.values()), "epoch time (s)", "notes"]
    cells = []
    for _, row in table.iterrows():
        stats = [_mean_std(row[f"{m}_mean"], row[f"{m}_std"], scale, spec) for m, (_, scale, spec) in METRICS.items()]
        span = "-" if math.isnan(row["epoch_time_min"]) else f"{row['epoch_time_min']:.3g}-{row['epoch_time_max']:.3g}"
        cells.append([row["dataset"], row["method"], str(row["n"]), *stats, span, _notes(row)])
    return pd.DataFrame(cells, columns=headers)


def readable_loss(table: pd.DataFrame) -> pd.DataFrame:
    """The learning-rate study's table as text cells under readable column titles."""
    headers = ["dataset", "method", "n", "best final loss", "average final loss", "divergent case exists", "notes"]
    cells = [[row["dataset"], row["method"], str(row["n"]), _mean_std(row["best_final_loss"], math.nan, 1, ".4g"),
              _mean_std(row["avg_final_loss"], math.nan, 1, ".4g"),
              "yes" if row["divergent_case"] else "no", _notes(row)] for _, row in table.iterrows()]
    return pd.DataFrame(cells, columns=headers)


def markdown(cells: pd.DataFrame) -> str:
    """A pipe table of text cells (tabulate via pandas), cells kept as written; `|` inside a cell escaped."""
    escaped = cells.apply(lambda column: column.str.replace("|", r"\|", regex=False))
    return escaped.to_markdown(index=False, disable_numparse=True) + "\n"


def latex(cells: pd.DataFrame) -> str:
    """A booktabs `tabular` of text cells (needs \\usepackage{booktabs}), every cell and title escaped;
    text columns (dataset, method, notes) left-aligned, numbers right-aligned."""
    text = {"dataset", "method", "notes"}
    align = "".join("l" if column in text else "r" for column in cells.columns)
    styler = cells.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
    return styler.to_latex(hrules=True, column_format=align).replace("±", r"$\pm$")
