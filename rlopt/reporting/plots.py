"""Figures for one run: accuracy, loss, precision/recall/F1, reward, the action timeline, and layer-wise lrs."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from rlopt.files import atomic_path  # noqa: E402
from rlopt.reporting import palette  # noqa: E402

# per format: the metadata that names the software or the date, left out so the same data gives the same bytes
UNDATED = {"png": {"Software": None}, "pdf": {"Creator": None, "Producer": None, "CreationDate": None}}


def save_figure(fig, path: Path, dpi: int = 110, formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """Write `fig` atomically once per format (`path` with that suffix), then close it; returns the paths."""
    written = []
    for fmt in formats:
        target = Path(path).with_suffix(f".{fmt}")
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight", metadata=UNDATED[fmt])
        written.append(target)
    plt.close(fig)
    return written


def _line(df: pd.DataFrame, columns: dict[str, str], ylabel: str, title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for col, label in (item for item in columns.items() if item[0] in df):
        values = df[col].replace([np.inf, -np.inf], np.nan)  # a diverged run's non-finite values: gaps
        if values.notna().any():
            ax.plot(df["epoch"], values, marker="o", ms=3, label=label)
    ax.set(xlabel="epoch", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # nothing finite to plot: an empty frame, no legend
        ax.legend()
    save_figure(fig, path)


def plot_run(df: pd.DataFrame, out: Path, title: str) -> list[Path]:
    """Write the run's PNGs into `out`; returns the paths written."""
    out = Path(out)
    written = []
    if df.empty:
        return written
    if "val_acc" in df and df["val_acc"].notna().any():
        _line(df, {"val_acc": "validation accuracy"}, "accuracy", title, out / "accuracy.png")
        _line(df, {"val_precision": "precision", "val_recall": "recall", "val_f1": "F1"},
              "macro score", title, out / "precision_recall_f1.png")
        written += [out / "accuracy.png", out / "precision_recall_f1.png"]
    _line(df, {"train_loss": "train", "val_loss": "validation"}, "loss", title, out / "loss.png")
    _line(df, {"reward": "reward"}, "reward", title, out / "reward.png")
    written += [out / "loss.png", out / "reward.png"]

    fig, (ax_opt, ax_lr) = plt.subplots(2, 1, figsize=(6, 4.2), sharex=True)
    names = list(dict.fromkeys(df["optimizer"].astype(str)))
    codes = df["optimizer"].astype(str).map({n: i for i, n in enumerate(names)})
    colour = palette.colours(names)  # the optimizer's colour in every figure
    ax_opt.scatter(df["epoch"], codes, c=[colour[n] for n in df["optimizer"].astype(str)], s=30)
    ax_opt.set_yticks(range(len(names)), names)
    ax_opt.set(ylabel="optimizer", title=f"{title}: actions")
    ax_lr.step(df["epoch"], df["lr"], where="pre")
    ax_lr.set(xlabel="epoch", ylabel="learning rate", yscale="log")
    for ax in (ax_opt, ax_lr):
        ax.grid(alpha=0.3)
    save_figure(fig, out / "actions.png")
    written.append(out / "actions.png")
    return written


def plot_layer_lrs(df: pd.DataFrame, out: Path, title: str) -> Path:
    """`layer_lrs.png`: every layer's learning rate over the run (layer-wise controllers), shallow to deep."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    cmap = plt.get_cmap("viridis")
    for (layer, name), rows in df.groupby(["layer", "name"], sort=True):
        ax.step(rows["opt_steps"], rows["lr"], where="pre", color=cmap(rows["depth"].iloc[0]), label=f"{layer}: {name}")
    ax.set(xlabel="optimizer steps", ylabel="learning rate", yscale="log", title=f"{title}: lr per layer")
    ax.grid(alpha=0.3)
    if df["layer"].nunique() <= 12:
        ax.legend(fontsize=7)
    save_figure(fig, Path(out) / "layer_lrs.png")
    return Path(out) / "layer_lrs.png"
