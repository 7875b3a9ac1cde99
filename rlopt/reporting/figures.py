"""Report figures, one set per dataset, from the finished runs' metrics.csv and summary.json files.

- curves per method over epochs, mean ± std over seeds: accuracy, loss (train | validation),
  reward, precision | recall | F1, and the learning rate (min-max band, log scale);
- the action timeline: per method, the share of seeds that chose each optimizer at each epoch;
- accuracy against compute: cumulative gradient evaluations of the run itself | the same shifted right by
  what producing the run cost before it started (an agent's learning runs, a tuned baseline's trials:
  `total_grad_evals - grad_evals`) | wall time; the IQM over seeds with its 95% bootstrap interval as a
  band; SAM's two gradient evaluations per step stretch its curve;
- performance profiles: the fraction of runs scoring above each threshold, with 95% bands (and one
  over all datasets, on normalised scores, when there are several);
- probability of improvement over the reference, with 95% intervals, per dataset and over datasets.

- the critical-difference diagram of the rank table, when there is one (rlopt.reporting.ranks).

Bands need at least `MIN_RUNS` runs; a method with fewer is drawn without one, and its legend entry
says so. Colours come from rlopt.reporting.palette: one per method and optimizer in every figure.
Legends sit outside the axes. The y range of accuracy against compute follows the typical methods:
a method whose final score is far below the others' (Tukey's rule) runs off the axis and its legend
entry says so, rather than squeezing every other curve into a sliver. Every
figure is written as PNG and PDF, without software, version or date metadata, so the same runs give
byte-identical files.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from rlopt.reporting import palette, ranks  # noqa: E402
from rlopt.reporting.compare import PROBABILITY  # noqa: E402
from rlopt.reporting.plots import save_figure  # noqa: E402
from rlopt.reporting.runs import FINISHED  # noqa: E402
from rlopt.reporting.stats import MIN_RUNS, interval, pooled_iqm, score_distribution  # noqa: E402

# file stem -> panels (metrics.csv column, axis label); one figure per dataset
CURVES = {
    "accuracy": [("val_acc", "validation accuracy")],
    "loss": [("train_loss", "training loss"), ("val_loss", "validation loss")],
    "reward": [("reward", "reward")],
    "precision_f1": [("val_precision", "validation precision (macro)"), ("val_recall", "validation recall (macro)"),
                     ("val_f1", "validation F1 (macro)")],
}
LOG_SCALE = {"train_loss", "val_loss", "lr"}
SCORES = {"val_acc", "val_precision", "val_recall", "val_f1"}  # higher is better; y range follows the typical methods
NUMERIC = ["epoch", "step", "lr", "train_loss", "val_loss", "val_acc", "val_precision", "val_recall", "val_f1",
           "reward", "epoch_time_s", "controller_time_s", "grad_evals"]
FORMATS = ("png", "pdf")
CURVE_POINTS = 200  # at most this many decision steps per IQM curve (each one its own bootstrap)
FEW_RUNS = f"(<{MIN_RUNS} runs: no band)"


def load_curves(runs: pd.DataFrame) -> pd.DataFrame:
    """The finished runs' metric rows with their dataset, method and run; inf (divergence) as NaN."""
    frames = []
    for run in runs[runs["status"].isin(FINISHED)].itertuples():
        metrics = Path(run.run) / "metrics.csv"
        if metrics.is_file():
            df = pd.read_csv(metrics)
            df[NUMERIC] = df[NUMERIC].apply(pd.to_numeric, errors="coerce").replace([math.inf, -math.inf], math.nan)
            before = run.total_grad_evals - run.grad_evals  # learning or tuning runs paid before this one
            frames.append(df.assign(dataset=run.dataset, method=run.method, run=run.run,
                                    spent_before=before if math.isfinite(before) else 0.0))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _band(ax, data: pd.DataFrame, column: str, colours: dict, spread: str = "std") -> dict[str, pd.Series]:
    """One line per method (the mean over its runs at each epoch) and a band: ± std or min-max; returns the lines."""
    means = {}
    for method, m in data.groupby("method", sort=True):
        stats = m.groupby("epoch")[column].agg(["mean", "std", "min", "max"]).dropna(subset=["mean"])
        if stats.empty:
            continue
        low, high = ((stats["mean"] - stats["std"].fillna(0), stats["mean"] + stats["std"].fillna(0))
                     if spread == "std" else (stats["min"], stats["max"]))
        ax.plot(stats.index, stats["mean"], color=colours[method], label=method, lw=1.5)
        ax.fill_between(stats.index, low, high, color=colours[method], alpha=0.2, lw=0)
        means[method] = stats["mean"]
    return means


def _curve_figure(dataset: str, data: pd.DataFrame, panels: list[tuple[str, str]], colours: dict, path: Path,
                  spread: str = "std") -> list[Path]:
    panels = [(col, label) for col, label in panels if data[col].notna().any()]
    if not panels:
        return []
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 3.6), squeeze=False)
    for ax, (column, label) in zip(axes[0], panels):
        means = _band(ax, data, column, colours, spread)
        ax.set(xlabel="epoch", ylabel=label, yscale="log" if column in LOG_SCALE else "linear")
        if column in SCORES and means:  # a failed method runs off the axis instead of flattening the others
            (low, high), off = _typical_range(means, higher_is_better=True)
            ax.set_ylim(low, high)
            if off:
                ax.set_title(f"off the axis: {', '.join(sorted(off))}", fontsize=7)
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    band = "mean ± std" if spread == "std" else "mean, min-max band"
    fig.suptitle(f"{dataset}: {band} over seeds", fontsize=10)
    return save_figure(fig, path, dpi=100, formats=FORMATS)


def _action_timeline(dataset: str, data: pd.DataFrame, colours: dict, path: Path) -> list[Path]:
    """Per method, stacked bars: the share of its runs that used each optimizer at each epoch."""
    methods = sorted(data["method"].unique())
    fig, axes = plt.subplots(len(methods), 1, figsize=(6.4, 1.1 * len(methods) + 0.9), sharex=True, squeeze=False,
                             layout="constrained")
    for ax, method in zip(axes[:, 0], methods):
        m = data[data["method"] == method]
        share = pd.crosstab(m["epoch"], m["optimizer"], normalize="index")
        epochs = share.index.to_numpy(dtype=float)
        # the typical gap between decisions (a budget that is not a multiple of steps_per_action ends on a short one)
        width = 0.9 * (float(np.median(np.diff(epochs))) if len(epochs) > 1 else 1.0)
        bottom = 0.0
        for optimizer in share.columns:
            ax.bar(epochs, share[optimizer], width=width, bottom=bottom, color=colours[optimizer])
            bottom = bottom + share[optimizer].to_numpy()
        ax.set_ylim(0, 1)
        ax.set_ylabel(method, rotation=0, ha="right", va="center", fontsize=8)
        ax.set_yticks([])
    axes[-1, 0].set_xlabel("epoch")
    fig.legend(handles=[Patch(color=c, label=o) for o, c in colours.items()], loc="outside lower center",
               fontsize=8, ncol=min(len(colours), 4))  # below the axes: clear of the title
    fig.suptitle(f"{dataset}: optimizer used at each decision (share of seeds)", fontsize=10, x=0.02, ha="left")
    return save_figure(fig, path, dpi=100, formats=FORMATS)


def _iqm_curve(runs_by_step: pd.DataFrame, reps: int, seed: int) -> pd.DataFrame:
    """IQM over runs at each step (columns: runs, rows: steps), with its interval where >= MIN_RUNS runs
    have a value there; at most CURVE_POINTS steps, evenly spaced, the last one kept."""
    keep = np.unique(np.linspace(0, len(runs_by_step) - 1, min(CURVE_POINTS, len(runs_by_step))).round().astype(int))
    rows = [(step, *interval(pooled_iqm, [values.dropna().to_numpy(dtype=float)], reps=reps, seed=seed))
            for step, values in runs_by_step.iloc[keep].iterrows() if values.notna().any()]
    return pd.DataFrame(rows, columns=["step", "iqm", "low", "high"]).set_index("step")


def _label(method: str, band: bool) -> str:
    return method if band else f"{method} {FEW_RUNS}"


def _outliers(values: pd.Series, higher_is_better: bool) -> set[str]:
    """The names whose value lies beyond 1.5 IQR of all values on the bad side (Tukey's rule; 4+ values)."""
    q1, q3 = values.quantile([0.25, 0.75])
    bad = values < q1 - 1.5 * (q3 - q1) if higher_is_better else values > q3 + 1.5 * (q3 - q1)
    return set(values[bad].index) if len(values) >= 4 else set()


def _typical_range(curves: dict[str, pd.Series], higher_is_better: bool,
                   log: bool = False) -> tuple[tuple[float, float], set[str]]:
    """(y limits, methods left off): the range of every curve except those whose final value is an outlier
    on the bad side by Tukey's rule (beyond 1.5 IQR of the methods' final values); `log`: padded for a log axis."""
    finals = pd.Series({m: c.dropna().iloc[-1] for m, c in curves.items() if c.notna().any()})
    off = _outliers(finals, higher_is_better)
    kept = pd.concat([c for m, c in curves.items() if m not in off]).dropna()
    low, high = float(kept.min()), float(kept.max())
    if log:
        low, high = low / 1.2, high * 1.2
    else:
        pad = 0.04 * (high - low) or 0.01 * abs(high) or 0.01
        low, high = low - pad, high + pad
    return (low, high), {m for m in off if not low <= finals[m] <= high}  # an outlier still inside is not "off"


def _compact(value: float, _position=None) -> str:
    """A tick label short enough for a narrow panel: 35000 -> 35k, 1600 -> 1.6k."""
    return f"{value / 1000:g}k" if abs(value) >= 1000 else f"{value:g}"


def _compute(dataset: str, data: pd.DataFrame, colours: dict, path: Path, reps: int, seed: int) -> list[Path]:
    """Accuracy (loss for regression) against the run's own gradient evaluations, against those plus what the
    run cost before it started (learning or tuning), and against wall time: the IQM over seeds at each decision
    step, with its 95% interval as a band; x is the mean over seeds at that step."""
    accuracy = data["val_acc"].notna().any()
    y, label = ("val_acc", "validation accuracy") if accuracy else ("val_loss", "validation loss")
    data = data.sort_values(["run", "step"])
    data = data.assign(wall_s=(data["epoch_time_s"] + data["controller_time_s"]).groupby(data["run"]).cumsum(),
                       total=data["grad_evals"] + data["spent_before"])
    paid = data["spent_before"].max() > 0  # some run was paid for before it started: show it
    xs_names = ["evals", "total", "wall"] if paid else ["evals", "wall"]
    fig, axes = plt.subplots(1, len(xs_names), figsize=(4.6 * len(xs_names) + 1.5, 3.9), sharey=True)
    curves, lines = {}, {}
    for method, m in data.groupby("method", sort=True):
        curve = _iqm_curve(m.pivot_table(index="step", columns="run", values=y, aggfunc="first"), reps, seed)
        xs = m.groupby("step").agg(evals=("grad_evals", "mean"), total=("total", "mean"),
                                   wall=("wall_s", "mean")).loc[curve.index]
        curves[method] = curve["iqm"]
        before = float(m["spent_before"].mean())
        drawn = [ax.plot(xs[x], curve["iqm"], color=colours[method], lw=1.5, marker="o", ms=2.5)[0]
                 for ax, x in zip(axes, xs_names)]
        lines[method] = drawn[0]
        for ax, x in zip(axes, xs_names):
            ax.fill_between(xs[x], curve["low"], curve["high"], color=colours[method], alpha=0.2, lw=0)
        if before > 0:  # the learning or tuning paid before the curve starts: a dotted lead-in from 0
            axes[1].plot([0, xs["total"].iloc[0]], [curve["iqm"].iloc[0]] * 2, color=colours[method], lw=1, ls=":")
        lines[method].set_label(_label(method, curve["low"].notna().any())
                                + (f" (+{before:,.0f} learning/tuning)" if before > 0 else ""))
    # a loss falls over decades: on a linear axis its tail, where the methods differ, is a flat line at 0
    log = not accuracy and all(float(c.min()) > 0 for c in curves.values() if c.notna().any())
    (low, high), off = _typical_range(curves, higher_is_better=accuracy, log=log)
    for method in off:
        lines[method].set_label(f"{lines[method].get_label()} (final {curves[method].dropna().iloc[-1]:.3g}: off the axis)")
    titles = {"evals": "gradient evaluations of the run", "total": "+ learning/tuning before it (dotted)",
              "wall": "wall time (s, training + controller)"}
    for ax, x in zip(axes, xs_names):
        ax.set(xlabel=titles[x])
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.xaxis.set_major_formatter(FuncFormatter(_compact))
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log" if log else "linear")
    axes[0].set(ylabel=f"{label} (IQM, 95% CI)", ylim=(low, high))
    axes[-1].legend(handles=list(lines.values()), fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.suptitle(f"{dataset}: {label} against compute (x: mean over seeds), IQM over seeds with 95% bootstrap band",
                 fontsize=10)
    return save_figure(fig, path, dpi=100, formats=FORMATS)


def _profile(title: str, tasks_by_method: dict[str, list[np.ndarray]], axis: str, sign: float, colours: dict,
             path: Path, reps: int, seed: int) -> list[Path]:
    """Performance profile: for each threshold, the fraction of runs scoring above it (averaged over the
    datasets in `tasks`), with a 95% band. `sign` -1 turns a negated loss back into a loss on the x axis."""
    # thresholds span the typical methods' runs: a failed method (Tukey's rule on the IQMs) does not stretch them
    off = _outliers(pd.Series({m: float(pooled_iqm([t[None] for t in tasks])[0]) for m, tasks in tasks_by_method.items()}),
                    higher_is_better=True)
    pooled = np.concatenate([t for m, tasks in tasks_by_method.items() if m not in off for t in tasks])
    thresholds = np.linspace(pooled.min(), pooled.max(), 101)
    profile = score_distribution(thresholds)
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for method, tasks in tasks_by_method.items():
        point, low, high = interval(profile, tasks, reps=reps, seed=seed)
        band = min(map(len, tasks)) >= MIN_RUNS
        ax.fill_between(sign * thresholds, low, high, color=colours[method], alpha=0.2 if len(tasks_by_method) <= 6 else 0.07,
                        lw=0, step="post")  # many methods: fainter bands, so the lines stay readable
        ax.step(sign * thresholds, point, where="post", color=colours[method], lw=1.5,
                label=_label(method, band) + (" (most runs off the axis)" if method in off else ""))
    relation = ">" if sign > 0 else "<"
    ax.set(xlabel=f"{axis} threshold τ", ylabel=f"fraction of runs with {axis} {relation} τ", ylim=(-0.02, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    ax.set_title(f"{title}: performance profile, 95% bootstrap bands", fontsize=10)
    return save_figure(fig, path, dpi=100, formats=FORMATS)


def _improvement(panels: list[tuple[str, pd.DataFrame]], colours: dict, path: Path) -> list[Path]:
    """One panel per dataset (and one over datasets): each method's probability of improvement over the
    reference as a dot with its 95% interval; the dashed line at 0.5 is "no difference"."""
    methods = sorted({m for _, table in panels for m in table["method"]})
    height = 0.45 * len(methods) + 1.4
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 1.2, height), sharey=True, squeeze=False)
    fig.subplots_adjust(top=1 - 0.75 / height)  # a fixed 0.75 in above the panels: the title and the panel titles
    for ax, (title, table) in zip(axes[0], panels):
        for row in table.itertuples():
            y = methods.index(row.method)
            if not np.isnan(row.low):
                ax.plot([row.low, row.high], [y, y], color=colours[row.method], lw=4, alpha=0.5, solid_capstyle="butt")
            face = "white" if np.isnan(row.low) else colours[row.method]  # open dot: no interval
            ax.plot(row.p, y, "o", color=colours[row.method], ms=6, mfc=face)
        ax.axvline(0.5, color="grey", ls="--", lw=1)
        ax.set(xlim=(-0.02, 1.02), xlabel=PROBABILITY)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, axis="x")
    axes[0, 0].set_yticks(range(len(methods)), methods)
    axes[0, 0].set_ylim(len(methods) - 0.5, -0.5)
    fig.suptitle(f"probability of improvement over the reference, 95% bootstrap intervals "
                 f"(open dot: <{MIN_RUNS} runs, no interval)", fontsize=10)
    return save_figure(fig, path, dpi=100, formats=FORMATS)


def plot_comparison(comparison: dict, colours: dict, out: Path, reps: int, seed: int) -> list[Path]:
    """Performance profiles per dataset (and over datasets) and the probability-of-improvement figure."""
    written = []
    scored, names = comparison["scores"], comparison["names"]
    for dataset, data in scored.groupby("dataset", sort=True):
        tasks = {m: [g["score"].to_numpy(dtype=float)] for m, g in data.groupby("method", sort=True)}
        loss = names[dataset].startswith("test loss")
        written += _profile(dataset, tasks, "test loss" if loss else "test accuracy", -1.0 if loss else 1.0, colours,
                            out / f"{dataset}_profile.png", reps, seed)
    normalised = comparison["normalised"]
    if normalised["dataset"].nunique() > 1:
        tasks = {m: [d["score"].to_numpy(dtype=float) for _, d in g.groupby("dataset", sort=True)]
                 for m, g in normalised.groupby("method", sort=True)}
        written += _profile("all datasets", tasks, "normalised score", 1.0, colours, out / "all_profile.png", reps, seed)
    improvement = comparison["improvement"]
    if len(improvement):
        panels = [(f"{d} (reference: {t['reference'].iloc[0]})",
                   t.rename(columns={"p_improvement": "p", "ci_low": "low", "ci_high": "high"}))
                  for d, t in improvement.groupby("dataset", sort=True)]
        aggregate = comparison["aggregate"]
        if len(aggregate):
            panels.append(("all datasets (mean over datasets)",
                           aggregate.rename(columns={"p_improvement": "p", "p_ci_low": "low", "p_ci_high": "high"})))
        written += _improvement(panels, colours, out / "improvement.png")
    return written


def plot_report(runs: pd.DataFrame, comparison: dict, out: Path, reps: int, seed: int) -> list[Path]:
    """Write every figure for every dataset into `out`; returns the paths written. Without the runs' metrics.csv
    files (a report from a runs.csv alone) only the comparison figures, which need the scores alone."""
    curves = load_curves(runs)
    methods = sorted(set(runs["method"]))
    method_colours = palette.colours(methods)
    written = []
    if not curves.empty:
        optimizer_colours = palette.colours(list(curves["optimizer"].astype(str).unique()))
        for dataset, data in curves.groupby("dataset", sort=True):
            for stem, panels in CURVES.items():
                written += _curve_figure(dataset, data, panels, method_colours, out / f"{dataset}_{stem}.png")
            written += _curve_figure(dataset, data, [("lr", "learning rate")], method_colours,
                                     out / f"{dataset}_lr.png", spread="range")
            written += _action_timeline(dataset, data.assign(optimizer=data["optimizer"].astype(str)),
                                        optimizer_colours, out / f"{dataset}_actions.png")
            written += _compute(dataset, data, method_colours, out / f"{dataset}_compute.png", reps, seed)
    if comparison["ranking"] is not None:
        written += ranks.plot_ranks(comparison["ranking"], out / "ranks_cd.png", FORMATS)
    return written + plot_comparison(comparison, method_colours, out, reps, seed)
