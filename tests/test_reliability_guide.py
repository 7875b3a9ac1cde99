"""Promises of docs/guide/reliability.md that no other test keeps: a Ctrl-C while `rlopt` starts is one line and exit
status 130, as later; a refused command leaves no folder behind, not even the empty ones Hydra made above its run
folder; `HYDRA_FULL_ERROR=1` shows the stack trace; a job preempted under submitit (USR2) is requeued and resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from conftest import REPO, call_cli, run_cli


# the console script (`rlopt` runs `from rlopt.cli import main; main()`), or `python -m rlopt`; the SIGINT comes
# while rlopt/__init__ registers the schemas, or while the CLI imports its modules
@pytest.mark.parametrize(("command", "during"), [
    (["-c", "import sys; sys.argv[0] = '/venv/bin/rlopt'; from rlopt.cli import main; main()"], "rlopt.schema"),
    (["-m", "rlopt"], "rlopt.hydra_app"),
])
def test_ctrl_c_while_the_command_starts_is_one_line_and_exit_130(tmp_path, command, during):
    # a sitecustomize sends the SIGINT exactly while `during` is imported (no race with a timer)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import builtins, os, signal\n"
        "real = builtins.__import__\n"
        "def imported(name, *args, **kwargs):\n"
        f"    if name == {during!r}:\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "    return real(name, *args, **kwargs)\n"
        "builtins.__import__ = imported\n")
    run = tmp_path / "run"
    run.mkdir()
    result = subprocess.run([sys.executable, *command, "train", "+debug=tiny"], cwd=run, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": f"{hook}{os.pathsep}{REPO}"}, timeout=120)
    assert result.returncode == 130, result.stderr
    assert result.stderr == "rlopt train: interrupted by SIGINT before it finished\n"
    assert not any(run.iterdir())


def test_importing_rlopt_elsewhere_leaves_sigint_alone():
    """Another program (here `python -c`) that imports rlopt keeps the SIGINT handler it had: Python's own, or
    SIG_IGN where it was started in the background; in a fresh interpreter, so the handler before is known."""
    check = ("import signal, sys; before = signal.getsignal(signal.SIGINT); import rlopt.cli; "
             "sys.exit(0 if signal.getsignal(signal.SIGINT) is before else 3)")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr or "importing rlopt changed the SIGINT handler"


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


def test_hydra_full_error_shows_the_stack_trace(tmp_path):
    plain = run_cli("train", "controller=nope", cwd=tmp_path)
    full = run_cli("train", "controller=nope", cwd=tmp_path, env_extra={"HYDRA_FULL_ERROR": "1"})
    assert plain.returncode == 2 and "Traceback" not in plain.stderr and len(plain.stderr.splitlines()) == 1
    assert full.returncode != 0 and "Traceback" in full.stderr and "controller" in full.stderr


@pytest.mark.slow
def test_a_job_preempted_under_submitit_is_requeued_and_resumes_in_its_folder(tmp_path):
    """USR2, submitit's preemption signal (Slurm's too), sent mid-run to a job of the submitit_local launcher: the
    job is requeued, runs again into its folder and resumes from its checkpoint (that a resume is exact, the kill
    tests show)."""
    run = ["+debug=tiny", "controller=sgd", "trainer.threads=1", "trainer.epochs=6", "dataset.train_subset=null"]
    sweep = subprocess.Popen([sys.executable, "-m", "rlopt", "train", "-m", *run, "hydra/launcher=submitit_local",
                              "hydra.sweep.dir=sweep"], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    folder = tmp_path / "sweep" / "0_digits_sgd_s0"
    deadline = time.time() + 300
    while sweep.poll() is None and time.time() < deadline:
        if (folder / "metrics.csv").is_file() and len((folder / "metrics.csv").read_text().splitlines()) > 3:
            break
        time.sleep(0.02)
    assert sweep.poll() is None, "the job finished before it could be preempted"
    os.kill(int((folder / ".rlopt.lock").read_text()), signal.SIGUSR2)  # the job's pid, which holds its folder
    assert sweep.wait(timeout=300) == 0, sweep.stderr.read()
    assert "resuming" in (folder / "train.log").read_text()
    assert json.loads((folder / "summary.json").read_text())["status"] == "completed"
    assert list(pd.read_csv(folder / "metrics.csv")["step"]) == [1, 2, 3, 4, 5, 6]
