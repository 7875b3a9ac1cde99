"""The command line's edges (docs/guide/reliability.md): a Ctrl-C while `rlopt` starts is one line and exit status
130, as later; a refused command leaves no folder behind, not even the empty ones Hydra made above its run folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from conftest import REPO, call_cli


@pytest.mark.parametrize("argv0", ["/venv/bin/rlopt", "-m"])  # the console script; `python -m rlopt`
@pytest.mark.parametrize("during", ["rlopt.schema", "rlopt.hydra_app"])  # rlopt/__init__'s schemas; the CLI's imports
def test_ctrl_c_while_the_command_starts_is_one_line_and_exit_130(tmp_path, argv0, during):
    # the SIGINT arrives exactly while `during` is imported, as the command's own imports run (no race with a timer)
    code = ("import builtins, os, signal, sys\n"
            f"sys.argv = [{argv0!r}, 'train', '+debug=tiny']\n"
            "real = builtins.__import__\n"
            "def imported(name, *args, **kwargs):\n"
            f"    if name == {during!r}:\n"
            "        os.kill(os.getpid(), signal.SIGINT)\n"
            "    return real(name, *args, **kwargs)\n"
            "builtins.__import__ = imported\n"
            "from rlopt.cli import main\n"
            "main()\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 130, result.stderr
    assert result.stderr == "rlopt train: interrupted by SIGINT before it finished\n"
    assert not any(tmp_path.iterdir())


def test_importing_rlopt_elsewhere_leaves_sigint_alone():
    import rlopt.cli  # noqa: F401  (this test process imported rlopt as a library)

    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("args", [
    ["train", "trainer.batch_size=0"],  # outputs/runs/<run>
    ["train", "hydra.run.dir=a/b/run", "trainer.batch_size=0"],
    ["evaluate", "policy=missing.zip"],  # outputs/evaluate/<run>
    ["report", "notarun"],  # outputs/reports/<time>
    ["report", "notarun", "out=r/s/report"],
    ["tune", "trainer.batch_size=0"],  # outputs/tune/<run>
])
def test_a_refused_command_leaves_no_new_folder(tmp_path, args):
    result = call_cli(*args, cwd=tmp_path)
    assert result.returncode == 2 and "error" in result.stderr, result.stderr
    assert sorted(tmp_path.rglob("*")) == []


def test_a_refused_command_leaves_the_folders_that_were_there(tmp_path):
    (tmp_path / "outputs" / "runs").mkdir(parents=True)
    assert call_cli("train", "trainer.batch_size=0", cwd=tmp_path).returncode == 2
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["outputs", "outputs/runs"]
