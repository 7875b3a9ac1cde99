"""`rlopt report DIR...`: tables and figures from finished runs, without retraining.

Runs are gathered first (every folder under the given ones that holds `.hydra/config.yaml`),
then tabled and plotted. Failed and incomplete runs are listed, never silently dropped.
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from rlopt.errors import UserError
from rlopt.hydra_app import hydra_entry
from rlopt.metrics import atomic_path
from rlopt.paths import conf_dir
from rlopt.report_figures import plot_report

TABLE_METRICS = ["test_acc", "test_f1", "test_precision", "test_recall", "test_loss", "converged_epoch", "grad_evals"]


def find_runs(dirs) -> list[Path]:
    runs = set()
    for d in dirs:
        root = Path(d).expanduser()
        if not root.is_dir():
            raise UserError(f"dirs: {d} is not a folder")
        for cfg_file in root.glob("**/.hydra/config.yaml"):
            runs.add(cfg_file.parent.parent)
    return sorted(runs)


def load_run(run_dir: Path) -> dict:
    """One record per run: identity from its config, results from its summary (or why there are none)."""
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    record = {
        "run": str(run_dir),
        "dataset": OmegaConf.select(cfg, "dataset.name"),
        "method": OmegaConf.select(cfg, "controller.name"),
        "seed": OmegaConf.select(cfg, "seed"),
    }
    summary_file = run_dir / "summary.json"
    if not summary_file.is_file():
        return {**record, "status": "incomplete", "error": "no summary.json"}
    summary = json.loads(summary_file.read_text())
    record.update({k: summary.get(k) for k in TABLE_METRICS})
    record["status"] = summary.get("status", "unknown")
    record["error"] = summary.get("error")
    record["final_val_loss"] = summary.get("final_val_loss")
    times = summary.get("epoch_time_s") or {}
    record["epoch_time_min"], record["epoch_time_max"] = times.get("min"), times.get("max")
    if summary.get("controller") and summary["controller"] != record["method"]:
        record["method"] = summary["controller"]
    return record


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """dataset x method: n, mean and std over seeds of each metric, epoch time min-max."""
    ok = runs[runs["status"].isin(["completed", "diverged"])]
    rows = []
    for (dataset, method), group in ok.groupby(["dataset", "method"], sort=True):
        row = {"dataset": dataset, "method": method, "n": len(group), "diverged": int((group["status"] == "diverged").sum())}
        for metric in TABLE_METRICS:
            values = pd.to_numeric(group[metric], errors="coerce")
            row[f"{metric}_mean"] = values.mean()
            row[f"{metric}_std"] = values.std(ddof=1) if len(values.dropna()) > 1 else 0.0
        row["epoch_time_min"] = group["epoch_time_min"].min()
        row["epoch_time_max"] = group["epoch_time_max"].max()
        rows.append(row)
    return pd.DataFrame(rows)


def lr_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per dataset x method: best and average final validation loss, and whether any run diverged."""
    done = runs[runs["status"].isin(["completed", "diverged"])]
    rows = []
    for (dataset, method), group in done.groupby(["dataset", "method"], sort=True):
        finite = pd.to_numeric(group.loc[group["status"] == "completed", "final_val_loss"], errors="coerce")
        rows.append({
            "dataset": dataset, "method": method, "n": len(group),
            "best_final_loss": finite.min(), "avg_final_loss": finite.mean(),
            "divergent_case": bool((group["status"] == "diverged").any()),
        })
    return pd.DataFrame(rows)


def _format(table: pd.DataFrame) -> pd.DataFrame:
    """mean +- std columns for the human-readable tables."""
    out = table[["dataset", "method", "n", "diverged"]].copy()
    for metric in TABLE_METRICS:
        mean, std = table[f"{metric}_mean"], table[f"{metric}_std"]
        out[metric] = [("-" if pd.isna(m) else f"{m:.4g} ± {s:.2g}") for m, s in zip(mean, std)]
    out["epoch_time_s"] = [f"{a:.3g}-{b:.3g}" for a, b in zip(table["epoch_time_min"], table["epoch_time_max"])]
    return out


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def report(cfg: DictConfig, out_dir: Path) -> dict:
    dirs = list(cfg.dirs or []) + ([cfg.sweep] if cfg.sweep else [])
    if not dirs:
        raise UserError("report: give at least one run or sweep folder (rlopt report DIR... or sweep=DIR)")
    run_dirs = find_runs(dirs)
    if not run_dirs:
        raise UserError(f"report: no runs under {', '.join(map(str, dirs))} (a run folder holds .hydra/config.yaml)")
    out_dir = Path(cfg.out) if cfg.out else Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = pd.DataFrame([load_run(r) for r in run_dirs]).sort_values(["dataset", "method", "seed", "run"])
    _write_text(out_dir / "runs.csv", runs.to_csv(index=False))
    table = summary_table(runs)
    _write_text(out_dir / "table.csv", table.to_csv(index=False))
    pretty = _format(table) if not table.empty else table
    _write_text(out_dir / "table.md", pretty.to_markdown(index=False) if not pretty.empty else "no finished runs\n")
    _write_text(out_dir / "table.tex", pretty.to_latex(index=False) if not pretty.empty else "% no finished runs\n")
    lr = lr_table(runs)
    _write_text(out_dir / "lr_table.csv", lr.to_csv(index=False))
    problems = runs[~runs["status"].isin(["completed", "diverged"])]
    _write_text(out_dir / "problems.csv", problems[["run", "dataset", "method", "seed", "status", "error"]].to_csv(index=False))
    figures = plot_report(runs, out_dir)
    for _, bad in problems.iterrows():
        print(f"rlopt report: {bad['status']} run {bad['run']}: {bad['error']}")
    print(f"rlopt report: {len(runs) - len(problems)} finished runs, {len(problems)} failed or incomplete -> {out_dir}")
    return {"runs": len(runs), "problems": len(problems), "out": str(out_dir), "figures": [str(f) for f in figures]}


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="report")
def main(cfg: DictConfig) -> None:
    hydra_entry("report", cfg, report)


if __name__ == "__main__":
    main()
