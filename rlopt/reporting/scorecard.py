"""The algorithm-selection scorecard: how much of the gap between the single best and the virtual best solver
a method closes on held-out instances (ASlib's measure), for runs that span two or more instances.

- Score: per run, its test accuracy, or minus its test loss on a regression instance (as `compare.scores`).
- Portfolio: the fixed baselines (fixed optimizers, schedules; all methods when there are none). Per instance
  the **VBS** (virtual best solver, an oracle that picks per instance) is the portfolio method with the best
  IQM score there.
- Normalised score per instance: 0 at the low reference (`report.low`'s IQM there; the instance's worst run
  where it has none), 1 at the VBS. Instances where the two coincide carry no information and are left out.
- **SBS** (single best solver): the portfolio method with the best mean normalised score over the *train*
  instances (among those with runs on every one of them): chosen without looking at the test instances.
- Gap closed on the test instances: (mean normalised score of the method - that of the SBS) / (1 - that of
  the SBS), over the test instances both ran on: 1 = the method is as good as the per-instance oracle, 0 = as
  the SBS, < 0 worse. Its 95% interval is a stratified bootstrap: instances resampled with replacement, and
  within each instance every method's runs (seeds), the VBS and the low reference recomputed per resample.
- Win / tie / loss against the SBS per test instance: normalised scores more than `TIE` apart.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from rlopt.reporting.compare import BASELINE_TYPES
from rlopt.reporting.compare import scores as run_scores
from rlopt.reporting.stats import CONFIDENCE, iqm

TIE = 0.01  # normalised scores closer than this (1% of the low-to-VBS range) are a tie


def instance_scores(runs: pd.DataFrame) -> pd.DataFrame:
    """(instance, part, method, controller_type, score) of every finished run with an instance and a finite score."""
    with_instance = runs[runs["instance"].notna()]
    parts = dict(zip(with_instance["instance"], with_instance["instance_part"]))
    scored, _ = run_scores(with_instance.assign(dataset=with_instance["instance"]))
    scored = scored.rename(columns={"dataset": "instance"})
    return scored.assign(part=scored["instance"].map(parts))


def _runs(scored: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
    return {key: g["score"].to_numpy(dtype=float) for key, g in scored.groupby(["instance", "method"], sort=True)}


def portfolio(scored: pd.DataFrame) -> list[str]:
    baselines = sorted(set(scored.loc[scored["controller_type"].isin(BASELINE_TYPES), "method"]))
    return baselines or sorted(set(scored["method"]))


class Scorecard:
    """Per-instance IQMs, VBS, low reference and normalised scores; the SBS; gap closed and win/tie/loss."""

    def __init__(self, scored: pd.DataFrame, low: str | None):
        self.scored, self.low = scored, low
        self.runs = _runs(scored)
        self.portfolio = portfolio(scored)
        self.parts = dict(zip(scored["instance"], scored["part"]))
        self.methods = sorted(set(scored["method"]))
        self.instances = sorted(self.parts)
        self.floor, self.vbs, self.vbs_method, self.floor_from = {}, {}, {}, {}
        for inst in self.instances:
            best = {m: float(iqm(self.runs[inst, m])) for m in self.portfolio if (inst, m) in self.runs}
            if not best:
                continue
            self.vbs_method[inst] = max(sorted(best), key=best.get)
            self.vbs[inst] = best[self.vbs_method[inst]]
            self.floor[inst], self.floor_from[inst] = self._floor(inst)
        self.kept = [i for i in self.vbs if self.vbs[i] != self.floor[i]]
        self.sbs = self._sbs()

    def _floor(self, inst: str) -> tuple[float, str]:
        if self.low is not None and (inst, self.low) in self.runs and self.low != self.vbs_method[inst]:
            return float(iqm(self.runs[inst, self.low])), f"IQM of {self.low}"
        return float(self.scored.loc[self.scored["instance"] == inst, "score"].min()), "worst run"

    def normalised(self, inst: str, method: str) -> float:
        if (inst, method) not in self.runs or inst not in self.kept:
            return math.nan
        return (float(iqm(self.runs[inst, method])) - self.floor[inst]) / (self.vbs[inst] - self.floor[inst])

    def part(self, part: str) -> list[str]:
        return [i for i in self.kept if self.parts[i] == part]

    def _sbs(self) -> str | None:
        train = self.part("train")
        covering = [m for m in self.portfolio if train and all((i, m) in self.runs for i in train)]
        if not covering:
            return None
        means = {m: float(np.mean([self.normalised(i, m) for i in train])) for m in covering}
        return max(sorted(means), key=means.get)

    # -- per instance -----------------------------------------------------------------------------------
    def per_instance(self) -> pd.DataFrame:
        rows = []
        for inst in self.instances:
            for method in self.methods:
                if (inst, method) not in self.runs:
                    continue
                x = self.runs[inst, method]
                rows.append({"instance": inst, "part": self.parts[inst], "method": method, "n": len(x),
                             "iqm": float(iqm(x)), "low": self.floor.get(inst, math.nan),
                             "low_from": self.floor_from.get(inst, ""), "vbs": self.vbs.get(inst, math.nan),
                             "vbs_method": self.vbs_method.get(inst, ""), "normalised": self.normalised(inst, method)})
        return pd.DataFrame(rows, columns=["instance", "part", "method", "n", "iqm", "low", "low_from", "vbs",
                                           "vbs_method", "normalised"])

    # -- gap closed on the test instances ------------------------------------------------------------------
    def _resampled(self, inst: str, method: str, rng: np.random.Generator, reps: int) -> np.ndarray:
        x = self.runs[inst, method]
        return iqm(x[rng.integers(0, len(x), size=(reps, len(x)))], axis=1)

    def _normalised_resamples(self, inst: str, methods: list[str], rng, reps: int) -> dict[str, np.ndarray]:
        """Per resample of `inst`'s runs: each of `methods`' normalised score, VBS and floor recomputed."""
        draws = {m: self._resampled(inst, m, rng, reps) for m in sorted({*self.portfolio, *methods})
                 if (inst, m) in self.runs}
        vbs = np.max([draws[m] for m in self.portfolio if m in draws], axis=0)
        if self.floor_from[inst].startswith("IQM"):
            floor = draws[self.low] if self.low in draws else self._resampled(inst, self.low, rng, reps)
        else:
            floor = np.full(reps, self.floor[inst])
        span = np.where(vbs == floor, np.nan, vbs - floor)
        return {m: (draws[m] - floor) / span for m in methods}

    def gap_closed(self, method: str, reps: int, seed: int) -> dict:
        """The method's gap closed on the test instances both it and the SBS ran on, with its bootstrap interval."""
        test = [i for i in self.part("test") if (i, method) in self.runs and (i, self.sbs) in self.runs]
        row = {"method": method, "test_instances": len(test), "n": int(sum(len(self.runs[i, method]) for i in test)),
               "normalised_mean": math.nan, "gap_closed": math.nan, "ci_low": math.nan, "ci_high": math.nan}
        if not test:
            return row
        mine = np.array([self.normalised(i, method) for i in test])
        sbs = np.array([self.normalised(i, self.sbs) for i in test])
        row["normalised_mean"] = float(mine.mean())
        if np.isclose(sbs.mean(), 1.0):
            return row  # the SBS is the VBS on these instances: there is no gap to close (the caption says so)
        row["gap_closed"] = float((mine.mean() - sbs.mean()) / (1 - sbs.mean()))
        if len(test) < 2:
            return row
        rng = np.random.default_rng(seed)
        per = [self._normalised_resamples(i, [method, self.sbs], rng, reps) for i in test]
        mine_r, sbs_r = (np.stack([p[m] for p in per], axis=1) for m in (method, self.sbs))  # (reps, instances)
        pick = rng.integers(0, len(test), size=(reps, len(test)))
        mine_mean = np.take_along_axis(mine_r, pick, axis=1).mean(axis=1)
        sbs_mean = np.take_along_axis(sbs_r, pick, axis=1).mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            gaps = (mine_mean - sbs_mean) / (1 - sbs_mean)
        gaps = gaps[np.isfinite(gaps)]
        tail = 100 * (1 - CONFIDENCE) / 2
        if len(gaps):
            row["ci_low"], row["ci_high"] = (float(v) for v in np.percentile(gaps, [tail, 100 - tail]))
        return row

    def gap_table(self, reps: int, seed: int) -> pd.DataFrame:
        columns = ["method", "test_instances", "n", "normalised_mean", "gap_closed", "ci_low", "ci_high", "wins", "ties",
                   "losses"]
        if self.sbs is None:
            return pd.DataFrame(columns=columns)
        tested = [m for m in self.methods if any((i, m) in self.runs for i in self.part("test"))]
        rows = [{**self.gap_closed(m, reps, seed), **self.win_tie_loss(m)} for m in tested]
        return pd.DataFrame(rows, columns=columns)

    def win_tie_loss(self, method: str) -> dict:
        """Per test instance both ran on: a win when the method's normalised score beats the SBS's by more than TIE."""
        diffs = [self.normalised(i, method) - self.normalised(i, self.sbs) for i in self.part("test")
                 if (i, method) in self.runs and (i, self.sbs) in self.runs]
        return {"wins": sum(d > TIE for d in diffs), "ties": sum(abs(d) <= TIE for d in diffs),
                "losses": sum(d < -TIE for d in diffs)}

    def wtl_table(self) -> pd.DataFrame:
        """Per test instance and method: win / tie / loss against the SBS."""
        rows = []
        for inst in self.part("test"):
            if (inst, self.sbs) not in self.runs:
                continue
            for method in self.methods:
                d = self.normalised(inst, method) - self.normalised(inst, self.sbs)
                if math.isnan(d):
                    continue
                rows.append({"instance": inst, "method": method, "difference": d,
                             "outcome": "win" if d > TIE else "loss" if d < -TIE else "tie"})
        return pd.DataFrame(rows, columns=["instance", "method", "difference", "outcome"])


def readable_gap(table: pd.DataFrame, sbs: str) -> pd.DataFrame:
    cells = [[r.method + (" (SBS)" if r.method == sbs else ""), str(r.test_instances), str(r.n),
              "-" if math.isnan(r.normalised_mean) else f"{r.normalised_mean:.3f}",
              _gap_cell(r), f"{r.wins}/{r.ties}/{r.losses}"] for r in table.itertuples()]
    return pd.DataFrame(cells, columns=["method", "test instances", "n", "mean normalised score",
                                        f"SBS-VBS gap closed [{CONFIDENCE:.0%} CI]", "win/tie/loss vs SBS"])


def _gap_cell(r) -> str:
    if math.isnan(r.gap_closed):
        return "-"
    if math.isnan(r.ci_low):
        return f"{100 * r.gap_closed:.1f}%"
    return f"{100 * r.gap_closed:.1f}% [{100 * r.ci_low:.1f}, {100 * r.ci_high:.1f}]"


def readable_wtl(table: pd.DataFrame) -> pd.DataFrame:
    """instance x method: win / tie / loss against the SBS (with the normalised difference)."""
    if table.empty:
        return pd.DataFrame(columns=["instance"])
    cells = table.assign(cell=[f"{o} ({d:+.3f})" for o, d in zip(table["outcome"], table["difference"])])
    wide = cells.pivot(index="instance", columns="method", values="cell").fillna("-")
    return wide.reset_index().rename_axis(columns=None)


def caption(card: Scorecard, reps: int, seed: int) -> str:
    train, test = card.part("train"), card.part("test")
    dropped = sorted(set(card.vbs) - set(card.kept))
    return (f"Algorithm-selection scorecard over {len(train)} train and {len(test)} test instances. Per instance, "
            f"each method's IQM score (test accuracy; minus the test loss for regression) normalised to 0 at the low "
            f"reference ({card.low or 'none'}; the instance's worst run where it has no runs) and 1 at the VBS, the "
            f"best portfolio method there (portfolio: {', '.join(card.portfolio)}). SBS = {card.sbs or 'none'}: the "
            f"portfolio method with the best mean normalised score on the train instances. Gap closed = (mean "
            f"normalised score - the SBS's) / (1 - the SBS's) on the test instances: 100% = the per-instance oracle, "
            f"0% = the SBS. {CONFIDENCE:.0%} CI: percentile interval of a bootstrap resampling test instances and, "
            f"within each, every method's runs ({reps} resamples, seed {seed}); none below 2 test instances. "
            f"Win/tie/loss: normalised scores more than {TIE} apart. Gap closed is empty (-) where the SBS is the VBS "
            f"on every test instance: there is no gap to close."
            + (f" Left out (VBS equals the low reference): {', '.join(dropped)}." if dropped else ""))
