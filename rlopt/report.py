"""`rlopt report DIR...`: tables and figures from finished runs, without retraining.

Runs are gathered first (every run folder at or under the folders given), then tabled and
plotted into the report's own folder (`out`). Only the run folders are read. Failed and
incomplete runs are counted in the tables, listed under them and in `problems.csv`, never
silently dropped. The same runs give byte-identical files on every call.
"""

from __future__ import annotations

from pathlib import Path

import hydra
import pandas as pd
from omegaconf import DictConfig

from rlopt.errors import UserError
from rlopt.files import atomic_path
from rlopt.hydra_app import hydra_entry
from rlopt.paths import conf_dir
from rlopt.reporting.figures import plot_report
from rlopt.reporting.runs import FINISHED, find_runs, identity, method_labels, read_status
from rlopt.reporting.tables import METRICS, latex, loss_table, markdown, readable_loss, readable_summary, summary_table

RUN_COLUMNS = ["dataset", "method", "seed", "status", "controller", "run", *METRICS, "final_val_loss",
               "epoch_time_min", "epoch_time_max", "overrides", "error"]


def load_runs(run_dirs: list[Path]) -> pd.DataFrame:
    """One row per run: identity and method from its config, results from its summary (or why there are none)."""
    records = []
    for run_dir in run_dirs:
        status, error, summary = read_status(run_dir)
        times = summary.get("epoch_time_s") or {}
        records.append({**identity(run_dir, summary), "status": status, "error": error,
                        **{key: summary.get(key) for key in [*METRICS, "final_val_loss"]},
                        "epoch_time_min": times.get("min"), "epoch_time_max": times.get("max")})
    for record, method in zip(records, method_labels(records)):
        record["method"] = method
        record["overrides"] = " ".join(f"{k}={v}" for k, v in record["overrides"].items())
    runs = pd.DataFrame(records, columns=RUN_COLUMNS)
    return runs.sort_values(["dataset", "method", "seed", "run"], kind="stable", ignore_index=True)


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _problem_lines(problems: pd.DataFrame) -> list[str]:
    return [f"{p.status} run {p.run} ({p.method}, seed {p.seed}): {p.error}" for p in problems.itertuples()]


def write_tables(runs: pd.DataFrame, out: Path) -> None:
    """runs.csv, problems.csv, table.{csv,md,tex} and loss_table.{csv,md,tex}."""
    _write_text(out / "runs.csv", runs.to_csv(index=False))
    problems = runs[~runs["status"].isin(FINISHED)]
    _write_text(out / "problems.csv", problems[["run", "dataset", "method", "seed", "status", "error"]].to_csv(index=False))
    listing = "".join(f"\n- {line}" for line in _problem_lines(problems))
    footer = f"\nNot in the statistics (failed or incomplete):\n{listing}\n" if listing else ""
    for name, table, readable in (("table", summary_table(runs), readable_summary),
                                  ("loss_table", loss_table(runs), readable_loss)):
        _write_text(out / f"{name}.csv", table.to_csv(index=False))
        cells = readable(table)
        _write_text(out / f"{name}.md", markdown(cells) + footer)
        _write_text(out / f"{name}.tex", latex(cells))


def report(cfg: DictConfig, out_dir: Path) -> dict:
    dirs = list(cfg.dirs or []) + ([cfg.sweep] if cfg.sweep else [])
    if not dirs:
        raise UserError("give at least one run or sweep folder (rlopt report DIR... or sweep=DIR)")
    run_dirs = find_runs(dirs)
    if not run_dirs:
        raise UserError(f"no runs under {', '.join(map(str, dirs))} (a run folder holds .hydra/config.yaml)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = load_runs(run_dirs)
    write_tables(runs, out)
    figures = plot_report(runs, out)
    problems = runs[~runs["status"].isin(FINISHED)]
    for line in _problem_lines(problems):
        print(f"rlopt report: {line}")
    print(f"rlopt report: {len(runs) - len(problems)} finished runs, {len(problems)} failed or incomplete -> {out}")
    return {"runs": len(runs), "problems": len(problems), "out": str(out), "figures": [str(f) for f in figures]}


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="report")
def main(cfg: DictConfig) -> None:
    hydra_entry("report", cfg, report)


if __name__ == "__main__":
    main()
