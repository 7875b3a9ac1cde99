"""The scorecard figure: per-instance normalised scores (left) and each method's gap closed with its interval (right).

Written as PNG and PDF (TrueType fonts embedded, no software or date metadata) like every report figure.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from rlopt.reporting.palette import colours as palette  # noqa: E402
from rlopt.reporting.plots import save_figure  # noqa: E402
from rlopt.reporting.scorecard import Scorecard  # noqa: E402

FORMATS = ("png", "pdf")
FLOOR = -1.0  # normalised scores (and gaps closed, x100%) below this sit on the axis' edge, marked, not stretching it
logging.getLogger("fontTools").setLevel(logging.WARNING)  # embedding TrueType subsets logs every table it prunes


def plot_scorecard(card: Scorecard, gaps: pd.DataFrame, path: Path) -> list[Path]:
    instances = [*card.part("train"), *card.part("test")]
    methods = card.methods
    colours = palette(methods)  # the project palette: a method has one colour in every figure
    with plt.rc_context({"pdf.fonttype": 42, "ps.fonttype": 42}):
        fig, (ax, ax_gap) = plt.subplots(1, 2, figsize=(11, 0.32 * len(methods) + 3.6),
                                         gridspec_kw={"width_ratios": [max(len(instances), 3), 4]}, layout="constrained")
        offsets = np.linspace(-0.3, 0.3, len(methods)) if len(methods) > 1 else [0.0]
        n_train = len(card.part("train"))
        if n_train:
            ax.axvspan(-0.5, n_train - 0.5, color="0.92", lw=0)
            ax.text((n_train - 1) / 2, 1.0, "train", transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                    fontsize=8, color="0.35")
        if len(instances) > n_train:
            ax.text((n_train + len(instances) - 1) / 2, 1.0, "test", transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=8, color="0.35")
        values = []
        for offset, method in zip(offsets, methods):
            y = np.array([card.normalised(i, method) for i in instances])
            x = np.arange(len(instances)) + offset
            values += [v for v in y if not math.isnan(v)]
            label = f"{method} (SBS)" if method == card.sbs else method
            ax.scatter(x, np.where(y < FLOOR, np.nan, y), color=colours[method], s=22, label=label, zorder=3)
            ax.scatter(x[y < FLOOR], np.full((y < FLOOR).sum(), FLOOR), color=colours[method], s=30, marker="v", zorder=3)
        ax.axhline(1.0, color="0.3", lw=0.8, ls="--")
        ax.axhline(0.0, color="0.3", lw=0.8, ls=":")
        clipped = any(v < FLOOR for v in values)
        ax.set_ylim(max(min([0.0, *values]), FLOOR) - 0.08, 1.08)  # a failed method does not squash the others
        ax.set_xticks(range(len(instances)), instances, rotation=45, ha="right", fontsize=8)
        ax.set(ylabel=f"normalised score (0 = {card.low or 'worst run'}, 1 = VBS)", xlim=(-0.5, len(instances) - 0.5))
        ax.grid(axis="y", alpha=0.3)
        ax.set_title("per instance" + (f" (▼: below {FLOOR:g})" if clipped else ""), fontsize=10, pad=14)
        rows = gaps.dropna(subset=["gap_closed"]).sort_values("gap_closed")
        ypos = np.arange(len(rows))
        for y, r in zip(ypos, rows.itertuples()):
            gap = 100 * r.gap_closed
            ax_gap.barh(y, max(gap, 100 * FLOOR), color=colours[r.method], height=0.6)
            if gap < 100 * FLOOR:  # far worse than the SBS: the bar stops at the edge and says its value
                ax_gap.text(100 * FLOOR, y, f" ◀ {gap:.0f}%", va="center", ha="left", fontsize=8, color="0.1")
            elif not math.isnan(r.ci_low):
                low, high = max(100 * r.ci_low, 100 * FLOOR), 100 * r.ci_high
                ax_gap.errorbar(gap, y, xerr=[[gap - low], [high - gap]], color="0.15", capsize=3)
        ax_gap.set_yticks(ypos, [f"{m} (SBS)" if m == card.sbs else m for m in rows["method"]], fontsize=8)
        ax_gap.set_xlim(100 * FLOOR - 8, max([108.0, *(100 * rows["ci_high"].dropna()), *(100 * rows["gap_closed"])]) + 4)
        ax_gap.axvline(0, color="0.3", lw=0.8, ls=":")
        ax_gap.axvline(100, color="0.3", lw=0.8, ls="--")
        if rows.empty:
            ax_gap.text(0.5, 0.5, "no gap to close: the SBS is the VBS\non every test instance it ran on",
                        transform=ax_gap.transAxes, ha="center", va="center", fontsize=9, color="0.3")
            ax_gap.set_yticks([])
        ax_gap.set(xlabel="SBS-VBS gap closed on test instances (%)")
        ax_gap.grid(axis="x", alpha=0.3)
        ax_gap.set_title("gap closed, 95% CI", fontsize=10, pad=14)
        fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=min(len(methods), 4), fontsize=8)
        return save_figure(fig, path, dpi=110, formats=FORMATS)
