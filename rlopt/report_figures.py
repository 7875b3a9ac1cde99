"""Report figures: mean +- std curves per method (over seeds), action timelines, accuracy vs compute."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from rlopt.metrics import atomic_path  # noqa: E402

CURVES = {"val_acc": "validation accuracy", "val_loss": "validation loss", "reward": "reward",
          "val_precision": "validation precision", "val_f1": "validation F1", "lr": "learning rate"}


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def load_curves(runs: pd.DataFrame) -> pd.DataFrame:
    frames = []
    for _, run in runs[runs["status"].isin(["completed", "diverged"])].iterrows():
        metrics = Path(run["run"]) / "metrics.csv"
        if metrics.is_file():
            df = pd.read_csv(metrics)
            df["dataset"], df["method"], df["seed"] = run["dataset"], run["method"], run["seed"]
            frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def plot_report(runs: pd.DataFrame, out: Path) -> list[Path]:
    curves = load_curves(runs)
    written: list[Path] = []
    if curves.empty:
        return written
    for dataset, data in curves.groupby("dataset", sort=True):
        for column, label in CURVES.items():
            if column not in data or data[column].notna().sum() == 0:
                continue
            fig, ax = plt.subplots(figsize=(6.4, 4))
            for method, m in data.groupby("method", sort=True):
                stats = m.groupby("epoch")[column].agg(["mean", "std"]).fillna(0.0)
                ax.plot(stats.index, stats["mean"], label=method)
                ax.fill_between(stats.index, stats["mean"] - stats["std"], stats["mean"] + stats["std"], alpha=0.2)
            ax.set(xlabel="epoch", ylabel=label, title=f"{dataset}: {label} (mean ± std over seeds)")
            if column == "lr":
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
            written.append(_save(fig, out / f"{dataset}_{column}.png"))
        written.append(_action_timeline(dataset, data, out))
        written.append(_compute(dataset, data, out))
    return written


def _action_timeline(dataset: str, data: pd.DataFrame, out: Path) -> Path:
    """Share of runs using each optimizer at each epoch, one panel per method."""
    methods = sorted(data["method"].unique())
    fig, axes = plt.subplots(len(methods), 1, figsize=(6.4, 1.6 * len(methods) + 0.6), sharex=True, squeeze=False)
    for ax, method in zip(axes[:, 0], methods):
        share = pd.crosstab(data.loc[data["method"] == method, "epoch"], data.loc[data["method"] == method, "optimizer"],
                            normalize="index")
        ax.stackplot(share.index, share.T.values, labels=share.columns)
        ax.set(ylabel=method, ylim=(0, 1))
        ax.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("epoch")
    fig.suptitle(f"{dataset}: optimizer chosen per epoch (share of seeds)")
    return _save(fig, out / f"{dataset}_actions.png")


def _compute(dataset: str, data: pd.DataFrame, out: Path) -> Path:
    """Accuracy (or loss) against gradient evaluations and wall time: SAM's double cost shows here."""
    y = "val_acc" if data["val_acc"].notna().any() else "val_loss"
    data = data.sort_values(["method", "seed", "step"]).copy()
    data["wall_s"] = data.groupby(["method", "seed"])["epoch_time_s"].cumsum() + data.groupby(["method", "seed"])["controller_time_s"].cumsum()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for method, m in data.groupby("method", sort=True):
        mean = m.groupby("step")[[y, "grad_evals", "wall_s"]].mean()
        a.plot(mean["grad_evals"], mean[y], label=method)
        b.plot(mean["wall_s"], mean[y], label=method)
    a.set(xlabel="gradient evaluations", ylabel=y, title=f"{dataset}: {y} vs compute")
    b.set(xlabel="wall time (s)")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    a.legend(fontsize=8)
    return _save(fig, out / f"{dataset}_compute.png")
