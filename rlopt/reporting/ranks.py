"""Ranks of 3+ methods over 2+ datasets or instances: Friedman test, Nemenyi critical difference, CD diagram.

For a study that runs several methods on several datasets (or instances of one), a per-dataset table
leaves the reader to add up who wins where. Demšar (JMLR 2006) ranks the methods within each block of
paired measurements and compares mean ranks; `autorank` (Herbold, JOSS 2020) does that, with the
Friedman omnibus test, the Nemenyi post-hoc test and its critical-difference diagram. A block here is
one (dataset, instance, seed) that has a finished run of every method: a seed fixes the initial weights
and data order, so runs of one seed are paired across methods. autorank needs at least five blocks;
with fewer there is no rank table. Scores are those of the probability-of-improvement table (test
accuracy, or minus the test loss on regression), so ranks are comparable across datasets of
different scales.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rlopt.reporting import compare

MIN_METHODS, MIN_TASKS, MIN_BLOCKS = 3, 2, 5  # autorank itself refuses fewer than 5 blocks
ALPHA = 0.05


@dataclass
class Ranking:
    table: pd.DataFrame   # raw numbers per method, best first: mean rank, median score, its MAD and CI
    cells: pd.DataFrame   # the same as text
    caption: str
    result: object        # autorank's RankResult (what the CD diagram is drawn from)


def blocks(runs: pd.DataFrame) -> pd.DataFrame:
    """Scores as blocks x methods: one row per (dataset, instance, seed) with a finished run of every method."""
    scored, _ = compare.scores(runs)
    wide = scored.pivot_table(index=["dataset", "instance", "seed"], columns="method", values="score", aggfunc="first")
    return wide.dropna()


def rank_blocks(runs: pd.DataFrame) -> Ranking | None:
    """autorank over the complete blocks, nonparametric (Friedman + Nemenyi) so there is always a CD diagram;
    None unless there are 3+ methods over 2+ datasets or instances and 5+ complete blocks."""
    data = blocks(runs)
    tasks = data.index.droplevel("seed").nunique() if len(data) else 0
    if data.shape[1] < MIN_METHODS or tasks < MIN_TASKS or len(data) < MIN_BLOCKS:
        return None
    from autorank import autorank  # heavy; only reports that rank need it

    with contextlib.redirect_stdout(io.StringIO()):  # it prints that normality tests are skipped when forced
        result = autorank(data.reset_index(drop=True), alpha=ALPHA, order="descending", force_mode="nonparametric")
    ranked = result.rankdf.sort_values("meanrank", kind="stable")
    table = pd.DataFrame({"method": ranked.index, "mean_rank": ranked["meanrank"].to_numpy(),
                          "median_score": ranked["median"].to_numpy(), "mad": ranked["mad"].to_numpy(),
                          "ci_low": ranked["ci_lower"].to_numpy(), "ci_high": ranked["ci_upper"].to_numpy()})
    cells = pd.DataFrame({"method": table["method"], "mean rank": table["mean_rank"].map("{:.2f}".format),
                          "median score": table["median_score"].map("{:.4g}".format),
                          "median CI": [f"[{lo:.4g}, {hi:.4g}]" for lo, hi in zip(table["ci_low"], table["ci_high"])]})
    caption = (f"Ranks over {len(data)} blocks (dataset x instance x seed with a finished run of every method; "
               f"{tasks} datasets or instances), rank 1 = best score (test accuracy, or minus the test loss); median "
               f"score with autorank's confidence interval. Friedman test p = {result.pvalue:.3g}; Nemenyi critical "
               f"difference CD = {result.cd:.2f} at alpha {ALPHA}: methods whose mean ranks differ by less than CD "
               f"cannot be told apart (`ranks_cd.png`). autorank (Herbold 2020), nonparametric mode.")
    return Ranking(table, cells, caption, result)


def plot_ranks(ranking: Ranking, path: Path, formats: tuple[str, ...]) -> list[Path]:
    """The critical-difference diagram: mean ranks on a line, methods within CD of each other joined."""
    import matplotlib.pyplot as plt
    from autorank import plot_stats

    from rlopt.reporting.plots import save_figure

    fig, ax = plt.subplots(figsize=(7, 0.35 * len(ranking.table) + 1.5))
    plot_stats(ranking.result, ax=ax)
    ax.set_title(f"mean rank, critical difference {ranking.result.cd:.2f} (Nemenyi, alpha {ALPHA})", fontsize=9)
    return save_figure(fig, path, dpi=100, formats=formats)
