"""The run lifecycle (rlopt.run.experiment): a finished run is left alone when its command runs again, a refused
command leaves no folder behind, and a run stopped before its first row is continued or run again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, call_cli, kill_at, make_cfg
from rlopt.controllers import run_controller
from rlopt.run.experiment import run_experiment
from rlopt.run.folder import LOCK
from rlopt.run.protocol import Controller, RunContext

RUN = ["controller=sgd", "+debug=tiny", "trainer.threads=1", "trainer.epochs=1", "trainer.tensorboard=false"]


def files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes (the lock file aside: it holds the pid of the last holder)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != LOCK}


def one_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_a_finished_run_is_left_alone_when_its_command_runs_again(tmp_path):
    assert call_cli("train", *RUN, "hydra.run.dir=run", cwd=tmp_path).returncode == 0
    before = files(tmp_path / "run")
    assert "summary.json" in before and "metrics.csv" in before
    for args in ([*RUN, "hydra.run.dir=run"], ["resume=run"]):
        again = call_cli("train", *args, cwd=tmp_path)
        assert again.returncode == 0 and "already completed" in one_line(again), (args, again.stderr)
        assert files(tmp_path / "run") == before, args
    other = call_cli("train", *RUN, "seed=1", "hydra.run.dir=run", cwd=tmp_path)
    assert other.returncode == 2 and "finished run with a different config (seed differ)" in one_line(other)
    assert files(tmp_path / "run") == before


def test_a_sweep_run_again_into_its_folder_skips_its_finished_jobs(tmp_path):
    sweep = ["train", "-m", *RUN, "seed=0,1", "hydra.sweep.dir=sweep"]
    assert call_cli(*sweep, cwd=tmp_path).returncode == 0
    jobs = sorted(p for p in (tmp_path / "sweep").iterdir() if (p / "summary.json").is_file())
    assert len(jobs) == 2
    before = {job: files(job) for job in jobs}
    again = call_cli(*sweep, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("already completed") == 2, again.stderr
    assert {job: files(job) for job in jobs} == before


@pytest.mark.parametrize("args", [
    ["seed=-1"],
    ["trainer.batch_size=0"],
    ["dataset=cifar10", "dataset.download=false", "dataset.root=no_data"],  # offline, no copy
    ["dataset=mnist", "dataset.root=missing/root"],
])
def test_a_refused_run_leaves_no_folder_behind(tmp_path, args):
    result = call_cli("train", *RUN, *args, cwd=tmp_path)
    assert result.returncode == 2 and one_line(result).startswith("rlopt train: error:")
    assert not list((tmp_path / "outputs").rglob("*_s*")), list((tmp_path / "outputs").rglob("*"))


@pytest.mark.parametrize("args", [
    ["evaluate", "policy=missing.zip"],
    ["report", "notarun"],
    ["tune", "tune.n_trials=0"],
    ["train", "resume=notarun"],
])
def test_a_refused_command_leaves_no_dated_folder(tmp_path, args):
    result = call_cli(*args, cwd=tmp_path)
    assert result.returncode == 2 and "error:" in one_line(result)
    made = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert made == [], made


@pytest.mark.slow
def test_a_run_killed_before_its_first_row_is_continued_by_resume(tmp_path):
    assert call_cli("train", *RUN, "hydra.run.dir=ref", cwd=tmp_path).returncode == 0
    kill_at("claimed", "train", *RUN, "hydra.run.dir=run", cwd=tmp_path)
    assert not (tmp_path / "run" / "metrics.csv").exists()
    resumed = call_cli("train", "resume=run", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    timing = ["epoch_time_s", "controller_time_s", "checkpoint_time_s"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "run" / "metrics.csv").drop(columns=timing),
                                  pd.read_csv(tmp_path / "ref" / "metrics.csv").drop(columns=timing))


def test_a_run_killed_before_it_claimed_its_folder_is_run_again(tmp_path):
    """Killed before it wrote anything into the folder Hydra made: `resume=` says so in one line and leaves the
    folder as it is; the command run again into that folder runs."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "train.log").write_text("")  # what Hydra had written when the run was killed
    resumed = call_cli("train", "resume=run", cwd=tmp_path)
    assert resumed.returncode == 2 and "run its command again, with hydra.run.dir=run" in one_line(resumed)
    assert files(tmp_path / "run") == {"train.log": b""}
    again = call_cli("train", *RUN, "hydra.run.dir=run", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "run" / "summary.json").is_file()


@pytest.mark.slow
def test_the_controller_protocols_import_nothing_heavy():
    code = ("import sys, rlopt.run.protocol; "
            "print(sorted(m for m in ('torch', 'gymnasium', 'stable_baselines3', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


class Probe(Controller):
    """A controller written against the protocol alone: records what `setup` gave it, then always acts 0."""

    def __init__(self, seen: dict):
        self.seen = seen

    def setup(self, env, state, context: RunContext) -> None:
        self.seen.update(env=env, state=state, context=context)

    def act(self, obs):
        return 0


def test_a_controller_sees_the_run_through_its_context_only(tmp_path):
    seen = {}
    cfg = make_cfg("controller=sgd", "trainer.epochs=1")
    summary = run_experiment(cfg, tmp_path, lambda run_cfg: Probe(seen))
    context = seen["context"]
    assert summary["status"] == "completed" and seen["state"] is None
    assert context.run_dir == tmp_path and context.tb_dir == tmp_path / "tb" and context.config.seed == cfg.seed
    assert not hasattr(seen["env"], "runner") and not hasattr(seen["env"].unwrapped, "last_result")


def test_a_resumed_run_builds_its_controller_from_the_config_it_runs(tmp_path):
    """A rerun may differ in what is only shown (`label`); the run continues with its checkpoint's config, and
    the controller is built from that one."""
    class Stop(Exception):
        pass

    def stop_at_2(row):
        if row["step"] == 2:
            raise Stop

    with pytest.raises(Stop):
        run_experiment(make_cfg("controller=sgd", "trainer.epochs=3", "label=first"), tmp_path, run_controller,
                       observers=[stop_at_2])
    given = []
    run_experiment(make_cfg("controller=sgd", "trainer.epochs=3", "label=second"), tmp_path,
                   lambda run_cfg: given.append(run_cfg.label) or run_controller(run_cfg))
    assert given == ["first"]
    assert list(pd.read_csv(tmp_path / "metrics.csv")["step"]) == [1, 2, 3]
