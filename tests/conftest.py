"""Shared test helpers: compose configs in-process, run the CLI in a subprocess."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from rlopt.cli import main
from rlopt.paths import conf_dir

REPO = Path(__file__).resolve().parent.parent

# Small and fast: a handful of epochs on a slice of digits, no progress bar.
TINY = ["trainer.epochs=2", "trainer.progress=false", "trainer.plots=false", "dataset.train_subset=256", "dataset.val_size=100"]


def make_cfg(*overrides: str, config: str = "train", tiny: bool = True):
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        return compose(config_name=config, overrides=[*(TINY if tiny else []), *overrides])


@pytest.fixture
def cfg_factory():
    return make_cfg


def run_cli(*args: str, cwd: Path, timeout: float = 300, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m rlopt ARGS` in `cwd`, importing this checkout's rlopt."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HYDRA_FULL_ERROR": "0", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "rlopt", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


def call_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`rlopt ARGS` in this process (no interpreter start-up): exit code and captured output."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        os.chdir(previous)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli_inproc():
    return call_cli
