"""`final=true`: the best config on the evaluation seeds, each into `final/s<seed>/`."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from rlopt.errors import UserError
from rlopt.reporting.runs import read_status
from rlopt.tune.objective import run_controller, run_experiment
from rlopt.tune.outputs import best_config


def run_final(cfg: DictConfig, folder: Path, info: dict) -> list[dict]:
    """The best config on every evaluation seed, into final/s<seed>/ (a finished one is kept, an
    interrupted one continues from its checkpoint)."""
    if info["best"] is None:
        raise UserError("final=true: no trial has completed, so there is no best config to run")
    summaries = []
    for seed in cfg.tune.final_seeds:
        run_dir = folder / "final" / f"s{seed}"
        status, _, summary = read_status(run_dir) if (run_dir / "summary.json").is_file() else ("incomplete", None, {})
        if status in ("completed", "diverged"):
            summaries.append(summary)
            continue
        run_cfg = best_config(cfg, info["best"]["params"], info)
        with open_dict(run_cfg):
            run_cfg.seed = int(seed)
            run_cfg.label = run_cfg.label or f"tuned {run_cfg.controller.name}"  # one method name for every seed
        hydra_dir = run_dir / ".hydra"  # what `rlopt report` and `rlopt train resume=` read
        hydra_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(run_cfg, hydra_dir / "config.yaml")
        OmegaConf.save(OmegaConf.create([*info["best"]["overrides"].split(), f"seed={seed}"]), hydra_dir / "overrides.yaml")
        summaries.append(run_experiment(run_cfg, run_dir, run_controller))
    return summaries


