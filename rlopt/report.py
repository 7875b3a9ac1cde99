"""`rlopt report DIR...`: tables and figures from finished runs, without retraining.

Runs are gathered first (every run folder at or under the folders given) into `runs.csv`
(rlopt/reporting/runs_table.py); the tables are computed from that file as read back, so the same
runs.csv and settings (`report.json`) give the same tables byte for byte, also without the run folders
(`rlopt report runs_csv=PATH`). Figures are plotted from the runs' metrics.csv files into the report's
own folder (`out`). Only the run folders are read. Failed and
incomplete runs are counted in the tables, listed under them and in `problems.csv`, never
silently dropped. Statistics are the IQM with stratified-bootstrap intervals, probability of
improvement and performance profiles (rlopt/reporting/stats.py); the bootstrap's resamples and
seed are settings, recorded in `report.json`, so the same runs and settings give byte-identical
files on every call.
"""

from __future__ import annotations

from pathlib import Path

import hydra
import pandas as pd
from omegaconf import DictConfig

from rlopt.config import validate_report
from rlopt.errors import UserError
from rlopt.files import atomic_path, write_json
from rlopt.hydra_app import hydra_entry
from rlopt.paths import conf_dir
from rlopt.reporting import amortised, compare, ranks, scorecard, tables
from rlopt.reporting.figures import plot_report
from rlopt.reporting.runs import FINISHED, find_runs
from rlopt.reporting.runs_table import load_runs, read_runs, runs_csv
from rlopt.reporting.scorecard_plot import plot_scorecard
from rlopt.reporting.stats import CONFIDENCE, MIN_RUNS
from rlopt.reporting.tables import few_note


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _problem_lines(problems: pd.DataFrame) -> list[str]:
    return [f"{p.status} run {p.run} ({p.method}, seed {p.seed}): {p.error}" for p in problems.itertuples()]


def _write_table(out: Path, name: str, table: pd.DataFrame, cells: pd.DataFrame, text: str) -> None:
    """`name`.csv (raw numbers), .md and .tex (text cells, with `text` as the caption)."""
    _write_text(out / f"{name}.csv", table.to_csv(index=False))
    _write_text(out / f"{name}.md", tables.markdown(cells, text))
    _write_text(out / f"{name}.tex", tables.latex(cells, text))


def write_tables(runs: pd.DataFrame, out: Path, stat: str, reps: int, seed: int) -> None:
    """problems.csv, table.{csv,md,tex} and loss_table.{csv,md,tex}: functions of `runs` (read from runs.csv)."""
    problems = runs[~runs["status"].isin(FINISHED)]
    _write_text(out / "problems.csv", problems[["run", "dataset", "method", "seed", "status", "error"]].to_csv(index=False))
    listing = "".join(f"\n- {line}" for line in _problem_lines(problems))
    footer = f"\nNot in the statistics (failed or incomplete):\n{listing}" if listing else ""
    table = tables.summary_table(runs, reps, seed)
    cells = tables.readable_summary(table, stat)
    _write_table(out, "table", table, cells, tables.caption(stat, reps, seed) + few_note(cells) + footer)
    loss = tables.loss_table(runs)
    _write_table(out, "loss_table", loss, tables.readable_loss(loss),
                 "best and average final validation loss of the runs that did not diverge." + footer)


def write_comparison(runs: pd.DataFrame, out: Path, settings: DictConfig) -> dict:
    """improvement.{csv,md,tex}, over several datasets aggregate.{csv,md,tex}, and with 3+ methods over 2+
    datasets or instances the rank table (rlopt.reporting.ranks); returns what the figures need."""
    reps, seed = settings.bootstrap.reps, settings.bootstrap.seed
    scored, names = compare.scores(runs)
    reference, source = compare.chosen_reference(runs, settings.reference)
    refs = compare.references(scored, reference) if len(scored) else {}
    improvement = compare.improvement_table(scored, refs, reps, seed)
    normalised, how = compare.normalise(scored, refs, settings.low)
    aggregate = compare.aggregate_table(normalised, scored, refs, reps, seed)
    if len(improvement):
        cells = compare.readable_improvement(improvement)
        _write_table(out, "improvement", improvement, cells,
                     compare.improvement_caption(names, refs, reference, source, reps, seed,
                                                 instances=bool(compare.instances_of(scored))) + few_note(cells))
    if len(aggregate):
        cells = compare.readable_aggregate(aggregate)
        _write_table(out, "aggregate", aggregate, cells, compare.aggregate_caption(how, settings.low) + few_note(cells))
    ranking = ranks.rank_blocks(runs)
    if ranking is not None:
        _write_table(out, "ranks", ranking.table, ranking.cells, ranking.caption)
    return {"scores": scored, "names": names, "references": refs, "reference_rule": compare.reference_rule(reference, source),
            "improvement": improvement, "normalised": normalised, "normalisation": how, "aggregate": aggregate,
            "ranking": ranking}


def _gather(cfg: DictConfig, out: Path) -> pd.DataFrame:
    """Write runs.csv (from the run folders, or copied from `runs_csv`) and return it as read back from disk,
    so that every table below is a function of that file."""
    if cfg.runs_csv:
        source = Path(str(cfg.runs_csv))
        if not source.is_file():
            raise UserError(f"runs_csv={cfg.runs_csv}: no such file (give the runs.csv of an earlier rlopt report)")
        text = runs_csv(read_runs(source))
    else:
        dirs = list(cfg.dirs or []) + ([cfg.sweep] if cfg.sweep else [])
        run_dirs = find_runs(dirs)
        if not run_dirs:
            raise UserError(f"no runs under {', '.join(map(str, dirs))} (a run folder holds .hydra/config.yaml)")
        text = runs_csv(load_runs(run_dirs))
    _write_text(out / "runs.csv", text)
    return read_runs(out / "runs.csv")


def write_scorecard(runs: pd.DataFrame, out: Path, settings: DictConfig) -> list[Path]:
    """scorecard.{csv,md,tex} (gap closed, win/tie/loss), scorecard_instances.{csv,md,tex} (per instance),
    scorecard_wtl.{csv,md,tex}, amortised.{csv,md,tex} and the figure, for runs on two or more instances."""
    reps, seed = settings.bootstrap.reps, settings.bootstrap.seed
    card = scorecard.Scorecard(scorecard.instance_scores(runs), settings.low)
    text = scorecard.caption(card, reps, seed)
    per_instance = card.per_instance()
    _write_table(out, "scorecard_instances", per_instance, per_instance.round(4).astype(str), text)
    costs = amortised.amortised_table(runs)
    if len(costs):
        _write_table(out, "amortised", costs, amortised.readable_amortised(costs), amortised.caption())
    if card.sbs is None:
        print("rlopt report: no portfolio method ran on every train instance: no SBS, no gap closed (scorecard_instances only)")
        return []
    gaps = card.gap_table(reps, seed)
    _write_table(out, "scorecard", gaps, scorecard.readable_gap(gaps, card.sbs), text)
    wtl = card.wtl_table()
    _write_table(out, "scorecard_wtl", wtl, scorecard.readable_wtl(wtl), f"Per test instance: against the SBS ({card.sbs}). "
                 f"win/tie/loss: normalised scores more than {scorecard.TIE} apart (the difference in brackets).")
    return plot_scorecard(card, gaps, out / "scorecard")


def report(cfg: DictConfig, out_dir: Path) -> dict:
    validate_report(cfg)
    settings = cfg.report
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = _gather(cfg, out)
    reps, seed = settings.bootstrap.reps, settings.bootstrap.seed
    write_tables(runs, out, str(settings.stat), reps, seed)
    comparison = write_comparison(runs, out, settings)
    figures = plot_report(runs, comparison, out, reps, seed)
    if runs.loc[runs["instance"] != "", "instance"].nunique() >= 2:
        figures += write_scorecard(runs, out, settings)
    problems = runs[~runs["status"].isin(FINISHED)]
    write_json(out / "report.json", {
        "stat": str(settings.stat), "confidence": CONFIDENCE, "min_runs_for_interval": MIN_RUNS,
        "bootstrap": {"reps": reps, "seed": seed, "interval": "percentile",
                      "resampling": "runs, with replacement, within each dataset (stratified); methods independently"},
        "reference": comparison["references"], "reference_rule": comparison["reference_rule"],
        "reference_setting": settings.reference, "low": settings.low, "normalisation": comparison["normalisation"],
        "runs": len(runs), "problems": len(problems)})
    for line in _problem_lines(problems):
        print(f"rlopt report: {line}")
    print(f"rlopt report: {len(runs) - len(problems)} finished runs, {len(problems)} failed or incomplete -> {out}")
    return {"runs": len(runs), "problems": len(problems), "out": str(out), "figures": [str(f) for f in figures]}


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="report")
def main(cfg: DictConfig) -> None:
    hydra_entry("report", cfg, report)


if __name__ == "__main__":
    main()
