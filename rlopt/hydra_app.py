"""What every `@hydra.main` wrapper shares: run-folder lookup, multirun behaviour, error reporting.

A `UserError` becomes one line on stderr and exit status 2 (in a single run), and the folder Hydra made
for the command is removed if it still holds nothing but Hydra's own files; a run stopped by
SIGINT/SIGTERM one line saying how to continue it, and exit status 130/143; an OS error (a full
disk, a read-only folder) one line saying what stays and how to continue, exit status 1. Under multirun a
failing job is logged and its failure recorded in its own folder's summary.json (by the command
itself, or here when it failed before it could), and the sweep goes on; the `SweepSummary`
callback lists the failures at the end.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from rlopt.errors import RunInterrupted, RunRefused, RunsFailed, UserError
from rlopt.run.failures import write_failure
from rlopt.run.folder import CONFIG_DIR, only_hydra_files, write_run_config

log = logging.getLogger("rlopt")


def interrupted_line(command: str, err: RunInterrupted) -> str:
    run_dir = getattr(err, "run_dir", None)
    if run_dir is None:
        return err.before_run_line(command)
    folder = shlex.quote(str(run_dir))
    again = (f"rlopt {command} resume={folder}" if command in ("train", "tune")  # tune: the folder of the study
             else f"the same command with hydra.run.dir={folder}")
    return f"rlopt {command}: interrupted at step {err.step}; continue with: {again}"


def hydra_entry(command: str, cfg: DictConfig, fn: Callable[[DictConfig, Path], object]):
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    if multirun and "trainer" in cfg:
        with open_dict(cfg):
            cfg.trainer.progress = False
    out_dir = Path(hc.runtime.output_dir)
    # what a refusal may remove: a folder Hydra made for this command (with `resume=DIR` it is the user's DIR)
    made_for_command = only_hydra_files(out_dir) and not OmegaConf.select(cfg, "resume")
    try:
        return fn(cfg, out_dir)
    except RunInterrupted as err:  # status `interrupted` is in summary.json already; the whole command stops
        print(interrupted_line(command, err), file=sys.stderr)
        sys.exit(128 + err.signum)
    except RunRefused as err:  # the folder is another run's: not a line of it changes, not even its train.log
        print(f"rlopt {command}: error: {err}", file=sys.stderr)
        if multirun:
            return None
        sys.exit(2)
    except RunsFailed as err:  # each failed run recorded its own traceback; the command says which in one line
        if multirun:
            log.error("rlopt %s: %s", command, err)
            return None
        print(f"rlopt {command}: {err}", file=sys.stderr)
        sys.exit(1)
    except UserError as err:
        if multirun:
            log.error("rlopt %s: error: %s", command, err)
            _record_job_failure(out_dir, err, cfg)
            return None
        if made_for_command and only_hydra_files(out_dir):  # a user's mistake leaves no folder behind
            shutil.rmtree(out_dir, ignore_errors=True)
        print(f"rlopt {command}: error: {err}", file=sys.stderr)
        sys.exit(2)
    except Exception as err:
        if multirun:
            log.exception("rlopt %s: job failed", command)
            _record_job_failure(out_dir, err, cfg)
            return None
        if isinstance(err, OSError):  # the machine's, not the user's: a full disk, a read-only or vanished folder
            print(f"rlopt {command}: error: {err}; {_what_stays(command, out_dir)}", file=sys.stderr)
            sys.exit(1)
        raise


def _what_stays(command: str, out_dir: Path) -> str:
    """What a user can do after an OS error stopped a run: what was written stays; a checkpoint resumes it."""
    folder = shlex.quote(str(out_dir))
    if command == "train" and (out_dir / "checkpoint.pt").is_file():
        return f"what the run wrote stays in {folder}; once that is fixed, continue with: rlopt train resume={folder}"
    return f"what was written so far stays in {folder}"


def _record_job_failure(out_dir: Path, err: BaseException, cfg: DictConfig) -> None:
    """A failed job's summary.json, and its config if it failed before the run wrote one (the sweep finds its
    jobs by `.hydra/config.yaml`, so the failure is listed)."""
    if not (out_dir / CONFIG_DIR / "config.yaml").is_file():
        with contextlib.suppress(OSError):  # the disk may be full: the sweep goes on all the same
            write_run_config(cfg, out_dir / CONFIG_DIR)
    write_failure(out_dir, err, cfg, keep_existing=True)
