"""What a study leaves in the tune folder, rewritten from the storage after every trial: trials.csv,
tune.json, and once a trial completed best.yaml and best_overrides.txt."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import optuna
import pandas as pd
from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.trial import TrialState

from rlopt.files import atomic_path, write_json
from rlopt.tune.budget import spent_grad_evals
from rlopt.tune.objective import run_config
from rlopt.tune.space import METRICS


def trials_table(study: optuna.Study, folder: Path) -> pd.DataFrame:
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.WAITING:
            continue
        run_dir = folder / "trials" / f"{t.number:04d}"
        rows.append({
            "number": t.number, "state": t.state.name.lower().replace("fail", "failed"),
            "value": t.value, **{f"param.{k}": v for k, v in t.params.items()},
            "grad_evals": spent_grad_evals(run_dir),
            "wall_time_s": _wall_time(t, run_dir),
            "last_step": t.last_step, "retry_of": t.user_attrs.get("retry_of"), "run": str(run_dir.relative_to(folder)),
            "worker": f"{t.user_attrs.get('host')}:{t.user_attrs.get('pid')}",
        })
    table = pd.DataFrame(rows)
    for column in ("last_step", "retry_of"):
        if column in table:
            table[column] = table[column].astype("Int64")
    return table


def _wall_time(trial, run_dir: Path) -> float | None:
    """A trial's duration; for one whose worker died, until its last metrics row (not until it was found dead)."""
    if trial.state == TrialState.FAIL and (run_dir / "metrics.csv").is_file() and trial.datetime_start:
        return (datetime.fromtimestamp((run_dir / "metrics.csv").stat().st_mtime) - trial.datetime_start).total_seconds()
    return trial.duration.total_seconds() if trial.duration else None


def write_outputs(study: optuna.Study, cfg: DictConfig, folder: Path, overrides: list[str]) -> dict:
    """trials.csv, tune.json and (once a trial completed) best.yaml and best_overrides.txt, from the storage."""
    table = trials_table(study, folder)
    with atomic_path(folder / "trials.csv") as tmp:
        table.to_csv(tmp, index=False)
    counts = table["state"].value_counts().to_dict() if len(table) else {}
    ran = table[table["state"] != "running"] if len(table) else table
    info = {"metric": cfg.tune.metric, "direction": METRICS[cfg.tune.metric], "n_trials": int(cfg.tune.n_trials),
            "budget_grad_evals": cfg.tune.budget_grad_evals,
            "trials": {s: int(counts.get(s, 0)) for s in ("complete", "pruned", "failed", "running")},
            "tuning_trials": len(ran), "tuning_grad_evals": int(ran["grad_evals"].sum()) if len(ran) else 0,
            "best": None}
    completed = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if completed:
        best = study.best_trial
        line = [*overrides, *(f"{k}={v}" for k, v in best.params.items()),
                f"tuning.grad_evals={info['tuning_grad_evals']}", f"tuning.trials={info['tuning_trials']}"]
        info["best"] = {"number": best.number, "value": best.value, "params": best.params, "overrides": " ".join(line)}
        (folder / "best_overrides.txt").write_text(" ".join(line) + "\n")
        with atomic_path(folder / "best.yaml") as tmp:
            OmegaConf.save(best_config(cfg, best.params, info), tmp)
    write_json(folder / "tune.json", info)
    return info


def best_config(cfg: DictConfig, params: dict, info: dict) -> DictConfig:
    best = run_config(cfg, params)
    with open_dict(best):
        best.tuning = {"grad_evals": info["tuning_grad_evals"], "trials": info["tuning_trials"]}
    return best


