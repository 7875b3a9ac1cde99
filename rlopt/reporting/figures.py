"""Report figures, one set per dataset, from the finished runs' metrics.csv files.

- curves per method over epochs, mean ± std over seeds: accuracy, loss (train | validation),
  reward, precision | recall | F1, and the learning rate (min-max band, log scale);
- the action timeline: per method, the share of seeds that chose each optimizer at each epoch;
- accuracy against compute (cumulative gradient evaluations | wall time), where SAM's two
  gradient evaluations per step show up as a curve stretched to the right.

A method keeps its colour in every figure, an optimizer its colour in every timeline. PNGs carry
no software/version metadata, so the same runs give byte-identical files.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from rlopt.reporting.plots import save_figure  # noqa: E402
from rlopt.reporting.runs import FINISHED  # noqa: E402

# file stem -> panels (metrics.csv column, axis label); one figure per dataset
CURVES = {
    "accuracy": [("val_acc", "validation accuracy")],
    "loss": [("train_loss", "training loss"), ("val_loss", "validation loss")],
    "reward": [("reward", "reward")],
    "precision_f1": [("val_precision", "validation precision (macro)"), ("val_recall", "validation recall (macro)"),
                     ("val_f1", "validation F1 (macro)")],
}
LOG_SCALE = {"train_loss", "val_loss", "lr"}
NUMERIC = ["epoch", "step", "lr", "train_loss", "val_loss", "val_acc", "val_precision", "val_recall", "val_f1", "reward",
           "epoch_time_s", "controller_time_s", "grad_evals"]


def _palette(names: list[str], cmap: str) -> dict[str, tuple]:
    colours = matplotlib.colormaps[cmap].colors
    return {name: colours[i % len(colours)] for i, name in enumerate(sorted(names))}


def load_curves(runs: pd.DataFrame) -> pd.DataFrame:
    """The finished runs' metric rows with their dataset, method and run; inf (divergence) as NaN."""
    frames = []
    for run in runs[runs["status"].isin(FINISHED)].itertuples():
        metrics = Path(run.run) / "metrics.csv"
        if metrics.is_file():
            df = pd.read_csv(metrics)
            df[NUMERIC] = df[NUMERIC].apply(pd.to_numeric, errors="coerce").replace([math.inf, -math.inf], math.nan)
            frames.append(df.assign(dataset=run.dataset, method=run.method, run=run.run))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _band(ax, data: pd.DataFrame, column: str, colours: dict, spread: str = "std") -> None:
    """One line per method (the mean over its runs at each epoch) and a band: ± std or min-max."""
    for method, m in data.groupby("method", sort=True):
        stats = m.groupby("epoch")[column].agg(["mean", "std", "min", "max"]).dropna(subset=["mean"])
        if stats.empty:
            continue
        low, high = ((stats["mean"] - stats["std"].fillna(0), stats["mean"] + stats["std"].fillna(0))
                     if spread == "std" else (stats["min"], stats["max"]))
        ax.plot(stats.index, stats["mean"], color=colours[method], label=method, lw=1.5)
        ax.fill_between(stats.index, low, high, color=colours[method], alpha=0.2, lw=0)


def _curve_figure(dataset: str, data: pd.DataFrame, panels: list[tuple[str, str]], colours: dict, path: Path,
                  spread: str = "std") -> Path | None:
    panels = [(col, label) for col, label in panels if data[col].notna().any()]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 3.6), squeeze=False)
    for ax, (column, label) in zip(axes[0], panels):
        _band(ax, data, column, colours, spread)
        ax.set(xlabel="epoch", ylabel=label, yscale="log" if column in LOG_SCALE else "linear")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    band = "mean ± std" if spread == "std" else "mean, min-max band"
    fig.suptitle(f"{dataset}: {band} over seeds", fontsize=10)
    return save_figure(fig, path, dpi=100)


def _action_timeline(dataset: str, data: pd.DataFrame, colours: dict, path: Path) -> Path:
    """Per method, stacked bars: the share of its runs that used each optimizer at each epoch."""
    methods = sorted(data["method"].unique())
    fig, axes = plt.subplots(len(methods), 1, figsize=(6.4, 1.1 * len(methods) + 0.9), sharex=True, squeeze=False)
    for ax, method in zip(axes[:, 0], methods):
        m = data[data["method"] == method]
        share = pd.crosstab(m["epoch"], m["optimizer"], normalize="index")
        epochs = share.index.to_numpy(dtype=float)
        width = 0.9 * (min(epochs[1:] - epochs[:-1]) if len(epochs) > 1 else 1.0)
        bottom = 0.0
        for optimizer in share.columns:
            ax.bar(epochs, share[optimizer], width=width, bottom=bottom, color=colours[optimizer])
            bottom = bottom + share[optimizer].to_numpy()
        ax.set_ylim(0, 1)
        ax.set_ylabel(method, rotation=0, ha="right", va="center", fontsize=8)
        ax.set_yticks([])
    axes[-1, 0].set_xlabel("epoch")
    fig.legend(handles=[Patch(color=c, label=o) for o, c in colours.items()], loc="upper right", fontsize=8,
               ncol=len(colours))
    fig.suptitle(f"{dataset}: optimizer used per epoch (share of seeds)", fontsize=10, x=0.02, ha="left")
    return save_figure(fig, path, dpi=100)


def _compute(dataset: str, data: pd.DataFrame, colours: dict, path: Path) -> Path:
    """Accuracy (loss for regression) against cumulative gradient evaluations and wall time."""
    y, label = ("val_acc", "validation accuracy") if data["val_acc"].notna().any() else ("val_loss", "validation loss")
    data = data.sort_values(["run", "step"])
    data = data.assign(wall_s=(data["epoch_time_s"] + data["controller_time_s"]).groupby(data["run"]).cumsum())
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.6), sharey=True)
    for method, m in data.groupby("method", sort=True):
        stats = m.groupby("step").agg(evals=("grad_evals", "mean"), wall=("wall_s", "mean"),
                                      mean=(y, "mean"), std=(y, "std")).fillna({"std": 0.0})
        for ax, x in zip(axes, ("evals", "wall")):
            ax.plot(stats[x], stats["mean"], color=colours[method], label=method, lw=1.5, marker="o", ms=2.5)
            ax.fill_between(stats[x], stats["mean"] - stats["std"], stats["mean"] + stats["std"],
                            color=colours[method], alpha=0.2, lw=0)
    axes[0].set(xlabel="gradient evaluations (cumulative)", ylabel=f"{label} (mean ± std)")
    axes[1].set(xlabel="wall time (s, training + controller)")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{dataset}: {label} against compute", fontsize=10)
    return save_figure(fig, path, dpi=100)


def plot_report(runs: pd.DataFrame, out: Path) -> list[Path]:
    """Write every figure for every dataset into `out`; returns the paths written."""
    curves = load_curves(runs)
    if curves.empty:
        return []
    method_colours = _palette(list(curves["method"].unique()), "tab10" if curves["method"].nunique() <= 10 else "tab20")
    optimizer_colours = _palette(list(curves["optimizer"].astype(str).unique()), "Dark2")
    written = []
    for dataset, data in curves.groupby("dataset", sort=True):
        for stem, panels in CURVES.items():
            written.append(_curve_figure(dataset, data, panels, method_colours, out / f"{dataset}_{stem}.png"))
        written.append(_curve_figure(dataset, data, [("lr", "learning rate")], method_colours, out / f"{dataset}_lr.png",
                                     spread="range"))
        written.append(_action_timeline(dataset, data.assign(optimizer=data["optimizer"].astype(str)), optimizer_colours,
                                        out / f"{dataset}_actions.png"))
        written.append(_compute(dataset, data, method_colours, out / f"{dataset}_compute.png"))
    return [path for path in written if path is not None]
