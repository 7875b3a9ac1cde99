"""What every `@hydra.main` wrapper shares: run-folder lookup, multirun behaviour, error reporting.

A `UserError` becomes one line on stderr and exit status 2 (in a single run). Under multirun a
failing job is logged and its failure recorded in its own folder's summary.json (by the command
itself, or here when it failed before it could), and the sweep goes on; the `SweepSummary`
callback lists the failures at the end.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Callable

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from rlopt.errors import UserError
from rlopt.reporting.runs import mark_failed

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
            mark_failed(out_dir, err)
            return None
        print(f"rlopt {command}: error: {err}", file=sys.stderr)
        sys.exit(2)
    except Exception as err:
        if multirun:
            log.exception("rlopt %s: job failed", command)
            mark_failed(out_dir, err)
            return None
        raise
