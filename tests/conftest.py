"""Shared test helpers: compose configs in-process, run the CLI in a subprocess."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig

from rlopt.cli import main
from rlopt.paths import conf_dir

REPO = Path(__file__).resolve().parent.parent

# Small and fast: the users' tiny-run preset (conf/debug/tiny.yaml), 2 epochs on a slice of the data.
TINY = ["+debug=tiny"]


def make_cfg(*overrides: str, config: str = "train", tiny: bool = True):
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        return compose(config_name=config, overrides=[*(TINY if tiny else []), *overrides])


@pytest.fixture(autouse=True)
def no_hydra_config_left():
    """Each test starts outside Hydra: an in-process CLI run that a test stops with an exception leaves Hydra's
    HydraConfig set, and a later `train()` in the same worker would write that command's .hydra/hydra.yaml."""
    yield
    HydraConfig.instance().cfg = None


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


def kill_at(point: str, *args: str, cwd: Path) -> None:
    """`python -m rlopt ARGS`, SIGKILLed by the test hook `RLOPT_TEST_KILL_AT` (rlopt/run/killpoints.py) at `point`,
    e.g. `row:3`, right after its 3rd CSV row: a real kill -9 at an exact place, so that a run too short to be
    raced from outside can be killed where the test needs it."""
    killed = run_cli(*args, cwd=cwd, env_extra={"RLOPT_TEST_KILL_AT": point})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]


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


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """`trained_run(controller)`: the folder of a tiny online run of that agent (4 epochs, one PPO update),
    trained once per session. For tests that only need a saved agent (policy.zip + policy.json): they
    share it, so they read it and never change it (copy the files first)."""
    from rlopt.train import train

    runs = {}

    def get(controller: str) -> Path:
        if controller not in runs:
            folder = tmp_path_factory.mktemp(controller)
            train(make_cfg(f"controller={controller}", "trainer.epochs=4"), folder)
            runs[controller] = folder
        return runs[controller]

    return get


@pytest.fixture
def tmpfs(tmp_path):
    """`tmpfs(size, read_only=False)`: a real tmpfs of that size mounted under tmp_path (root only; skips elsewhere)."""
    mounted = []

    def mount(size: str, read_only: bool = False):
        point = tmp_path / f"fs{len(mounted)}"
        point.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'})")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "--lazy", str(point)], capture_output=True)  # an in-process run may hold its log open
