"""Checkpoints: everything a run needs to continue exactly where it stopped.

`checkpoint.pt` in the run folder holds the environment (model, every optimizer's state, batch
order, bests), the recorder (rows, bytes and hash each CSV had committed), the controller (SB3
agent, replay buffer, its random state, episode counters), the python/numpy/torch RNG states and
the run's config (resolved), by which a rerun into the folder is recognised as the same run. It is
written to a temporary file and renamed, so after `kill -9` at any moment the folder holds either
the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import io
import pickle
import random
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from rlopt.errors import RunRefused
from rlopt.files import atomic_path
from rlopt.run import killpoints

FILENAME = "checkpoint.pt"


def rng_states() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def restore_rng(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])


class Checkpointer:
    """Saves the run's state every `every` calls of `save` (0 = never); loads it back for `resume`."""

    def __init__(self, run_dir: Path, env, recorder, config: dict, every: int = 1):
        self.path = Path(run_dir) / FILENAME
        self.env, self.recorder, self.config, self.every = env, recorder, config, int(every)
        self.calls = 0

    def save(self, controller_state: Callable[[], dict] = dict) -> float:
        """Write a checkpoint if this call is due; returns the seconds spent (0.0 when not due).

        `controller_state` is called only when a checkpoint is written, inside its timing: serialising
        an agent is checkpoint work, not the controller's (`checkpoint_time_s` vs `controller_time_s`)."""
        self.calls += 1
        if self.every <= 0 or self.calls % self.every:
            return 0.0
        started = time.perf_counter()
        state = {"env": self.env.state_dict(), "recorder": self.recorder.state_dict(),
                 "controller": controller_state(), "rng": rng_states(), "config": self.config}
        serialized = io.BytesIO()  # torch.save straight to a file turns a full disk into a RuntimeError; a write, OSError
        torch.save(state, serialized)
        with atomic_path(self.path) as tmp:
            tmp.write_bytes(serialized.getbuffer())
            killpoints.reach("checkpoint")
        return time.perf_counter() - started

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def load_checkpoint(run_dir: Path) -> dict:
    path = Path(run_dir) / FILENAME
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        raise RunRefused(f"resume: {path} is unreadable ({type(err).__name__}: {err}); the run cannot be resumed") from None
