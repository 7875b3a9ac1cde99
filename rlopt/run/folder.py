"""A run folder belongs to one process, and a checkpoint in it continues only the run it was written by.

`RunFolder` takes an OS lock on `<run>/.rlopt.lock` (`fcntl.flock`: the kernel releases it when the
process ends, however it ends, so a `kill -9` leaves nothing stale); a second process is refused
with the pid of the holder. Everything that decides whether the run may go on (`same_config`, the
recorder's file check) runs before anything is written, so a refused folder is left byte for byte
as it was. Only then does `claim` write: the holder's pid, the removal of temporary files that
interrupted writes left behind, and the run's `.hydra/` files. rlopt writes those itself (the
config sets `hydra.output_subdir: null`) because Hydra would overwrite the saved config of the
interrupted run before rlopt could compare it with the new one.

A refusal (a user's mistake found before the run recorded a row) leaves the folder as it found it:
`abandon` removes what this process added, and the command removes a folder that then holds nothing
but Hydra's own files (`only_hydra_files`).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from rlopt.errors import RunRefused, UserError
from rlopt.files import atomic_path
from rlopt.reporting.runs import FINISHED

LOCK = ".rlopt.lock"
CONFIG_DIR = ".hydra"
SUMMARY = "summary.json"
# Keys a resumed run may be started with differently: they change what is shown or kept, not what is computed
# (`dataset.root` is where the data was read from: a resume reads it from the same place, see `pin_data_root`).
ASIDE = ("resume", "label", "trainer.progress", "trainer.plots", "checkpoint.every", "checkpoint.keep", "dataset.root")
# Keys added to the config after runs were saved without them: a saved config that lacks one ran as this value
# (so a sweep of an older rlopt still continues by rerunning, and its finished runs are recognised)
ADDED = {"runs": 1, "controller.vectorize": "processes"}


class RunFolder:
    """`with RunFolder(run_dir) as folder:` holds the folder's lock for the block (see the module docstring)."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.fd: int | None = None

    def __enter__(self) -> RunFolder:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.found = set(os.listdir(self.run_dir))  # what `abandon` leaves
        path = self.run_dir / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunRefused(f"{self.run_dir} is in use by another rlopt process (pid {holder}); one process per "
                             "run folder: wait for it, stop it, or use another folder") from None
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)  # releases the lock
        self.fd = None

    def abandon(self) -> None:
        """Remove everything this process added to the folder (the run was refused before it recorded a row):
        what was there when the lock was taken stays."""
        for name in set(os.listdir(self.run_dir)) - self.found:
            path = self.run_dir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def claim(self, cfg: DictConfig, starting_over: bool, keep_config: bool = False) -> None:
        """Write into the folder, now that the run may go on: the pid (for a refused second process), no stale
        temporary files, and `.hydra/`. A run `starting_over` (no checkpoint to resume) writes its config, unless
        `keep_config` (the folder's own, from `resume=`), and removes a summary.json left by an earlier run in the
        folder: until this one finishes, the folder must not say `completed`. A resumed run keeps both."""
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)
        for folder in (self.run_dir, self.run_dir / CONFIG_DIR):
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
        config_dir = self.run_dir / CONFIG_DIR
        if (starting_over and not keep_config) or not (config_dir / "config.yaml").is_file():
            write_run_config(cfg, config_dir)
        if starting_over:
            (self.run_dir / "summary.json").unlink(missing_ok=True)


def write_run_config(cfg: DictConfig, config_dir: Path) -> None:
    """`config.yaml` (the config run), and under Hydra `hydra.yaml` and `overrides.yaml`, as Hydra writes them."""
    config_dir.mkdir(exist_ok=True)
    files = {"config.yaml": cfg}
    if HydraConfig.initialized():
        files.update({"hydra.yaml": HydraConfig.instance().cfg, "overrides.yaml": HydraConfig.get().overrides.task})
    for name, content in files.items():
        with atomic_path(config_dir / name) as tmp:
            tmp.write_text(OmegaConf.to_yaml(content), encoding="utf-8")


def pin_data_root(cfg: DictConfig) -> DictConfig:
    """`cfg` with `dataset.root` resolved (`$RLOPT_DATA` of this shell, or the default) to an absolute path, so the
    saved config, and a resume from it, read the data from where this run did."""
    root = OmegaConf.select(cfg, "dataset.root")
    if root is None:
        return cfg
    pinned = cfg.copy()
    with open_dict(pinned):
        pinned.dataset.root = os.path.abspath(os.path.expanduser(str(root)))
    return pinned


def config_values(cfg: DictConfig) -> dict:
    """The config as plain, resolved values: what a checkpoint keeps to recognise its run."""
    return OmegaConf.to_container(cfg, resolve=True)


def _flat(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def differing_keys(saved: dict, current: dict) -> list[str]:
    """Dotted keys whose values differ between two `config_values`, the `ASIDE` ones left out."""
    a, b = _flat(saved), _flat(current)
    return sorted(key for key in a.keys() | b.keys()
                  if key not in ASIDE and a.get(key, ADDED.get(key, "<absent>")) != b.get(key, ADDED.get(key, "<absent>")))


def same_config(run_dir: Path, saved: dict, cfg: DictConfig) -> None:
    """Refuse to continue the run checkpointed in `run_dir` (with config `saved`) under a config that differs."""
    differ = differing_keys(saved, config_values(cfg))
    if not differ:
        return
    shown = ", ".join(differ[:8]) + (f" and {len(differ) - 8} more" if len(differ) > 8 else "")
    raise RunRefused(f"{run_dir} holds an interrupted run with a different config ({shown} differ); continue it with "
                     f"the same config (or `rlopt train resume={run_dir}`), or write this run into another folder")


def finished_summary(run_dir: Path) -> dict | None:
    """The summary of a run that finished (completed or diverged) in `run_dir`, else None."""
    path = Path(run_dir) / SUMMARY
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) and summary.get("status") in FINISHED else None


def saved_config(run_dir: Path) -> DictConfig | None:
    """The config a run in `run_dir` saved when it claimed the folder, or None."""
    path = Path(run_dir) / CONFIG_DIR / "config.yaml"
    return OmegaConf.load(path) if path.is_file() else None


def resume_target(path: str) -> tuple[DictConfig, Path]:
    """The config and folder of the run at `path` (what `resume=PATH` continues, with its own config); whether
    there is anything left to do there is the run's to find out, holding the folder (`rlopt.run.experiment`)."""
    run_dir = Path(path).expanduser()
    cfg = saved_config(run_dir)
    if cfg is None:
        raise UserError(f"resume={path} is not a run folder: {run_dir / CONFIG_DIR / 'config.yaml'} is missing (a run "
                        f"stopped before it started saved none: run its command again, with hydra.run.dir={path})")
    with open_dict(cfg):
        cfg.resume = None
    return cfg, run_dir


def only_hydra_files(folder: Path) -> bool:
    """Whether `folder` holds nothing but what Hydra writes into a job's folder before the job runs (its log
    files and `.hydra/`): a folder a refused command may remove, having put nothing of a run there."""
    return all(entry.name == CONFIG_DIR or (entry.suffix == ".log" and entry.is_file()) for entry in Path(folder).iterdir())
