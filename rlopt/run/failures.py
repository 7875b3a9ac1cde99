"""Recording a failed run: its summary.json says `status: failed`, why, and what the run was.

Shared by `rlopt train`/`evaluate` (a run that failed after it started) and the Hydra wrapper (a
multirun job that failed before its command could record anything), so every failed run's
summary has the same keys, and reports read both alike.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from omegaconf import OmegaConf

from rlopt.files import write_json


def _identity(cfg) -> dict:
    """Dataset, model (the concrete one `auto` stands for), controller and seed, as far as `cfg` has them."""
    if cfg is None:
        return {}
    dataset, model = OmegaConf.select(cfg, "dataset.name"), OmegaConf.select(cfg, "model.name")
    if model is not None and dataset is not None:
        from rlopt.models import model_name  # torch: a failed run has imported it, the CLI's refusals have not

        model = model_name(model, dataset)
    found = {"dataset": dataset, "model": model, "controller": OmegaConf.select(cfg, "controller.name"),
             "seed": OmegaConf.select(cfg, "seed")}
    return {key: value for key, value in found.items() if value is not None}


def write_failure(run_dir: Path, err: BaseException, cfg=None, keep_existing: bool = False,
                  status: str = "failed", error: str | None = None) -> bool:
    """Write a `failed` summary.json into `run_dir` next to whatever the run already wrote (nothing is
    deleted). `keep_existing`: leave a summary.json that is already there (the command recorded the
    failure itself, with more to say). `status="interrupted"` (with its `error` line, no traceback):
    a run stopped by a signal, which `resume=` continues.

    Returns whether the summary was written. Writing it can fail for the very reason the run did (a full disk,
    a read-only or vanished folder): then nothing is written and the caller's error stands alone. A folder without
    summary.json reads as `incomplete`, and its checkpoint, if any, resumes it."""
    summary_file = Path(run_dir) / "summary.json"
    if keep_existing and summary_file.exists():
        return False
    try:
        summary_file.parent.mkdir(parents=True, exist_ok=True)
        write_json(summary_file, {
            "status": status,
            "error": error or f"{type(err).__name__}: {err}",
            **({"traceback": traceback.format_exc(limit=20)} if status == "failed" else {}),
            **_identity(cfg),
        })
    except OSError:
        return False
    return True
