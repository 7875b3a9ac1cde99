"""What every `@hydra.main` wrapper shares: run-folder lookup, multirun behaviour, error reporting.

A `UserError` becomes one line on stderr and exit status 2 (in a single run). Under multirun a
failing job is logged and its failure recorded in its own folder's summary.json (by the command
itself, or here when it failed before it could), and the sweep goes on; the `SweepSummary`
callback lists the failures at the end.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from rlopt.errors import UserError
from rlopt.failures import write_failure
from rlopt.files import atomic_path

log = logging.getLogger("rlopt")


def hydra_entry(command: str, cfg: DictConfig, fn: Callable[[DictConfig, Path], object]):
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    if multirun and "trainer" in cfg:
        with open_dict(cfg):
            cfg.trainer.progress = False
    out_dir = Path(hc.runtime.output_dir)
    try:
        return fn(cfg, out_dir)
    except UserError as err:
        if multirun:
            log.error("rlopt %s: error: %s", command, err)
            write_failure(out_dir, err, cfg, keep_existing=True)
            return None
        print(f"rlopt {command}: error: {err}", file=sys.stderr)
        sys.exit(2)
    except Exception as err:
        if multirun:
            log.exception("rlopt %s: job failed", command)
            write_failure(out_dir, err, cfg, keep_existing=True)
            return None
        raise


def save_run_config(cfg: DictConfig, run_dir: Path) -> None:
    """Replace the config Hydra saved in `run_dir` (`<hydra.output_subdir>/config.yaml`) with `cfg`, for a
    command that runs a config other than the composed one (`evaluate` takes the policy's controller).

    Only a file Hydra wrote is replaced: a call outside Hydra, or with `hydra.output_subdir=null`, has none.
    """
    if not HydraConfig.initialized() or HydraConfig.get().output_subdir is None:
        return
    saved = Path(run_dir) / HydraConfig.get().output_subdir / "config.yaml"
    if saved.is_file():
        with atomic_path(saved) as tmp:
            OmegaConf.save(cfg, tmp)
