"""A run folder belongs to one process, and a checkpoint in it continues only the run it was written by.

`RunFolder` takes an OS lock on `<run>/.rlopt.lock` (`fcntl.flock`: the kernel releases it when the
process ends, however it ends, so a `kill -9` leaves nothing stale); a second process is refused
with the pid of the holder. Everything that decides whether the run may go on (`same_config`, the
recorder's file check) runs before anything is written, so a refused folder is left byte for byte
as it was. Only then does `claim` write: the holder's pid, the removal of temporary files that
interrupted writes left behind, and the run's `.hydra/` files. rlopt writes those itself (the
config sets `hydra.output_subdir: null`) because Hydra would overwrite the saved config of the
interrupted run before rlopt could compare it with the new one.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from rlopt.errors import RunRefused
from rlopt.files import atomic_path

LOCK = ".rlopt.lock"
CONFIG_DIR = ".hydra"
# Keys a resumed run may be started with differently: they change what is shown or kept, not what is computed
# (`dataset.root` is where the data was read from: a resume reads it from the same place, see `pin_data_root`).
ASIDE = ("resume", "label", "trainer.progress", "trainer.plots", "checkpoint.every", "checkpoint.keep", "dataset.root")


class RunFolder:
    """`with RunFolder(run_dir) as folder:` holds the folder's lock for the block (see the module docstring)."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.fd: int | None = None

    def __enter__(self) -> RunFolder:
        self.run_dir.mkdir(parents=True, exist_ok=True)
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
    return sorted(key for key in a.keys() | b.keys() if key not in ASIDE and a.get(key, "<absent>") != b.get(key, "<absent>"))


def same_config(run_dir: Path, saved: dict, cfg: DictConfig) -> None:
    """Refuse to continue the run checkpointed in `run_dir` (with config `saved`) under a config that differs."""
    differ = differing_keys(saved, config_values(cfg))
    if not differ:
        return
    shown = ", ".join(differ[:8]) + (f" and {len(differ) - 8} more" if len(differ) > 8 else "")
    raise RunRefused(f"{run_dir} holds an interrupted run with a different config ({shown} differ); continue it with "
                     f"the same config (or `rlopt train resume={run_dir}`), or write this run into another folder")
