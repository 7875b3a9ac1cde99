"""Report tables: per dataset x method statistics over seeds, written as CSV, Markdown and LaTeX.

The CSV keeps raw numbers (fractions, seconds, counts) for further analysis: for every metric the
IQM with its 95% interval (rlopt.reporting.stats) and the mean and sample std (n - 1). Markdown and
LaTeX show one of them as text: `IQM [low, high]` (`report.stat=iqm`, the default) or `mean ± std`
(`report.stat=mean_std`). With fewer than `MIN_RUNS` finished runs a cell carries the IQM and a
marker instead of an interval, and the caption says why. Every dataset x method that has runs gets
a row, even when none of them finished, so a failure is visible where the result would be.
"""

from __future__ import annotations

import math

import pandas as pd

from rlopt.reporting.runs import FINISHED
from rlopt.reporting.stats import CONFIDENCE, MIN_RUNS, interval, pooled_iqm

# summary.json key -> (column title, scale, format spec); all of them in the CSV
METRICS = {
    "test_acc": ("test acc (%)", 100, ".2f"),
    "test_f1": ("F1 (%)", 100, ".2f"),
    "test_precision": ("precision (%)", 100, ".2f"),
    "test_recall": ("recall (%)", 100, ".2f"),
    "test_loss": ("test loss", 1, ".3g"),
    "converged_epoch": ("converged epoch", 1, ".1f"),
    "grad_evals": ("grad evals", 1, ",.0f"),
    # what producing the run cost in all: its own, an agent's learning runs and a tuned baseline's tuning trials
    "total_grad_evals": ("total grad evals", 1, ",.0f"),
    "wall_time_s": ("wall time (s)", 1, ".1f"),
}
# the readable tables' columns
HEADLINE = ["test_acc", "test_f1", "test_loss", "converged_epoch", "grad_evals", "total_grad_evals", "wall_time_s"]
FEW = "†"  # marks an IQM over fewer than MIN_RUNS runs


def _groups(runs: pd.DataFrame):
    """(dataset, method, its finished runs, counts of the others), sorted."""
    for (dataset, method), group in runs.groupby(["dataset", "method"], sort=True):
        done = group[group["status"].isin(FINISHED)]
        incomplete = int((group["status"] == "incomplete").sum())
        yield dataset, method, done, {"failed": len(group) - len(done) - incomplete, "incomplete": incomplete}


def numbers(values: pd.Series) -> pd.Series:
    """Finite numbers only: a diverged run's inf/NaN losses must not poison a statistic."""
    x = pd.to_numeric(values, errors="coerce").astype(float)
    return x[x.map(math.isfinite)]


def iqm_interval(values: pd.Series, reps: int, seed: int) -> tuple[float, float, float]:
    """(IQM, CI low, CI high) of one dataset x method's runs; no interval below MIN_RUNS runs."""
    if values.empty:
        return math.nan, math.nan, math.nan
    return tuple(float(v) for v in interval(pooled_iqm, [values.to_numpy(dtype=float)], reps=reps, seed=seed))


def summary_table(runs: pd.DataFrame, reps: int, seed: int) -> pd.DataFrame:
    """dataset x method: n finished, counts of diverged, failed and incomplete runs; for each metric over
    the finished runs its IQM, 95% interval, mean and std (NaN where too few); the epoch time range."""
    rows = []
    for dataset, method, done, others in _groups(runs):
        row = {"dataset": dataset, "method": method, "n": len(done),
               "diverged": int((done["status"] == "diverged").sum()), **others}
        for metric in METRICS:
            values = numbers(done[metric])
            row[f"{metric}_iqm"], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = iqm_interval(values, reps, seed)
            row[f"{metric}_mean"], row[f"{metric}_std"] = values.mean(), values.std(ddof=1)
            row[f"{metric}_n"] = len(values)
        row["epoch_time_min"] = numbers(done["epoch_time_min"]).min()
        row["epoch_time_max"] = numbers(done["epoch_time_max"]).max()
        rows.append(row)
    return pd.DataFrame(rows)


def loss_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The learning-rate study's table: best and average final validation loss over the runs that
    did not diverge, and whether a divergent case exists among the method's runs."""
    rows = []
    for dataset, method, done, others in _groups(runs):
        final = numbers(done.loc[done["status"] == "completed", "final_val_loss"])
        rows.append({"dataset": dataset, "method": method, "n": len(done), **others,
                     "best_final_loss": final.min(), "avg_final_loss": final.mean(),
                     "divergent_case": bool((done["status"] == "diverged").any())})
    return pd.DataFrame(rows)


def _mean_std(mean: float, std: float, scale: float, spec: str) -> str:
    if math.isnan(mean):
        return "-"
    shown = format(mean * scale, spec)
    return shown if math.isnan(std) else f"{shown} ± {format(std * scale, spec)}"


def _iqm_ci(point: float, low: float, high: float, scale: float, spec: str) -> str:
    if math.isnan(point):
        return "-"
    shown = format(point * scale, spec)
    return f"{shown} {FEW}" if math.isnan(low) else f"{shown} [{format(low * scale, spec)}, {format(high * scale, spec)}]"


def _notes(row) -> str:
    notes = [f"{row[k]} {k}" for k in ("diverged", "failed", "incomplete") if row.get(k)]
    return ", ".join(notes)


def cell(row, metric: str, stat: str) -> str:
    """One metric of one table row as text: `IQM [low, high]`, `IQM †` or `mean ± std`."""
    _, scale, spec = METRICS[metric]
    if stat == "mean_std":
        return _mean_std(row[f"{metric}_mean"], row[f"{metric}_std"], scale, spec)
    return _iqm_ci(row[f"{metric}_iqm"], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"], scale, spec)


def readable_summary(table: pd.DataFrame, stat: str) -> pd.DataFrame:
    """The summary table's headline metrics as text cells under readable column titles."""
    headers = ["dataset", "method", "n", *(METRICS[m][0] for m in HEADLINE), "epoch time (s)", "notes"]
    cells = []
    for _, row in table.iterrows():
        span = "-" if math.isnan(row["epoch_time_min"]) else f"{row['epoch_time_min']:.3g}-{row['epoch_time_max']:.3g}"
        cells.append([row["dataset"], row["method"], str(row["n"]), *(cell(row, m, stat) for m in HEADLINE), span,
                      _notes(row)])
    return pd.DataFrame(cells, columns=headers)


def caption(stat: str, reps: int, seed: int) -> str:
    """What the cells of a statistics table mean, and how they were computed."""
    if stat == "mean_std":
        return "mean ± std over seeds (sample std, n - 1) of the finished runs; n: finished runs."
    return (f"IQM [{CONFIDENCE:.0%} CI] over seeds: interquartile mean (25% trimmed mean) of the finished runs, "
            f"percentile interval of a bootstrap over runs ({reps} resamples, seed {seed}); n: finished runs.")


def few_note(cells: pd.DataFrame) -> str:
    """The note that explains the marker, when a cell carries it."""
    marked = cells.apply(lambda column: column.str.contains(FEW, regex=False)).to_numpy().any()
    return f" {FEW} fewer than {MIN_RUNS} runs: the estimate alone, without an interval." if marked else ""


def readable_loss(table: pd.DataFrame) -> pd.DataFrame:
    """The learning-rate study's table as text cells under readable column titles."""
    headers = ["dataset", "method", "n", "best final loss", "average final loss", "divergent case exists", "notes"]
    cells = [[row["dataset"], row["method"], str(row["n"]), _mean_std(row["best_final_loss"], math.nan, 1, ".4g"),
              _mean_std(row["avg_final_loss"], math.nan, 1, ".4g"),
              "yes" if row["divergent_case"] else "no", _notes(row)] for _, row in table.iterrows()]
    return pd.DataFrame(cells, columns=headers)


TEXT_COLUMNS = {"dataset", "method", "reference", "notes"}  # left-aligned; the others hold numbers


def markdown(cells: pd.DataFrame, caption: str = "") -> str:
    """A pipe table of text cells (tabulate via pandas), cells kept as written, `|` inside a cell escaped,
    numbers right-aligned; the caption as a paragraph under it."""
    escaped = cells.apply(lambda column: column.str.replace("|", r"\|", regex=False))
    align = ["left" if column in TEXT_COLUMNS else "right" for column in cells.columns]
    table = escaped.to_markdown(index=False, disable_numparse=True, colalign=align)
    return table + "\n" + (f"\n{caption}\n" if caption else "")


LATEX_SYMBOLS = {"±": r"$\pm$", FEW: r"\textsuperscript{\dag}"}


def latex(cells: pd.DataFrame, caption: str = "") -> str:
    """A booktabs `tabular` of text cells (needs \\usepackage{booktabs}), every cell and title escaped,
    numbers right-aligned. The caption goes above it as comment lines, for whoever puts the tabular in a
    `table` float."""
    align = "".join("l" if column in TEXT_COLUMNS else "r" for column in cells.columns)
    styler = cells.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
    tex = "".join(f"% {line}\n" for line in caption.splitlines()) + styler.to_latex(hrules=True, column_format=align)
    for symbol, command in LATEX_SYMBOLS.items():
        tex = tex.replace(symbol, command)
    return tex
