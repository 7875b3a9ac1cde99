"""Issue 13: exact resume for every controller and every file, one process per run folder, refusals that
change nothing, clean interrupts, resumable finishing; and the fault-injection campaign (slow).

Quick tests stop a run in-process (an observer or a patched kill point raises right after a row, which
leaves the folder as a kill there would: rows past the last checkpoint) and resume it; the slow ones
SIGKILL real processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import REPO, call_cli, make_cfg
from rlopt.errors import RunRefused
from rlopt.run import killpoints
from rlopt.run.folder import RunFolder, resume_target
from rlopt.train import train

TIMING = ["epoch_time_s", "controller_time_s", "checkpoint_time_s"]
RUN = ["+debug=tiny", "reward=loss_delta", "trainer.threads=1"]


class Stop(Exception):
    """Ends a run in-process, after a row and before the next checkpoint."""


def stop_at(step: int):
    def observer(row):
        if row["step"] == step:
            raise Stop

    return observer


def stop_then_resume(cfg, run_dir, *steps: int) -> None:
    """Stop the run in `run_dir` after each of `steps` (counted in metrics.csv), resuming it in between, then
    let it finish (each call after the first resumes from the folder's checkpoint)."""
    for step in steps:
        with pytest.raises(Stop):
            train(cfg, run_dir, observers=[stop_at(step)])
    train(cfg, run_dir)


def table(path):
    df = pd.read_csv(path)
    return df.drop(columns=[c for c in TIMING if c in df])


def snapshot(folder):
    """The run's files and their bytes, TensorBoard's event files aside (named by time and pid; a resume adds one)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not str(p.relative_to(folder)).startswith("tb/")}


def stop():
    raise Stop


def stop_cli_at(monkeypatch, step: int, action=stop):
    """Make the next in-process CLI run stop right after its `step`-th row (`action`: what happens there; by
    default `Stop` is raised, and propagates out of the CLI)."""
    rows = {"n": 0}

    def reach(point):
        if point == "row":
            rows["n"] += 1
            if rows["n"] == step:
                action()

    monkeypatch.setattr(killpoints, "reach", reach)


AGENTS = {
    # epsilon stays high enough that replayed random actions differ from the ones due (2 actions coincide often)
    "dqn_2opt": ["controller=dqn_2opt", "trainer.epochs=6", "controller.hyperparams.exploration_final_eps=0.5"],
    "dqn_lr": ["controller=dqn_lr", "trainer.epochs=6"],
    # the preset at a small budget: one decision per optimizer step, a checkpoint every 5
    "lr_polynomial": ["experiment=lr_polynomial", "trainer.max_steps=40", "checkpoint.every=5", "trainer.plots=false",
                      "trainer.progress=false"],
}


@pytest.mark.parametrize("agent", list(AGENTS))
def test_dqn_resumes_exactly_where_it_stopped(tmp_path, agent):
    # SB3's load reseeds the action space: the epsilon-random actions after a resume replayed the first ones
    tiny = agent != "lr_polynomial"
    cfg = make_cfg(*AGENTS[agent], "reward=loss_delta", "trainer.threads=1", tiny=tiny)
    train(cfg, tmp_path / "ref")
    stop_then_resume(cfg, tmp_path / "run", 13 if agent == "lr_polynomial" else 3)
    pd.testing.assert_frame_equal(table(tmp_path / "run" / "metrics.csv"), table(tmp_path / "ref" / "metrics.csv"))


def test_layerwise_tables_resume_across_two_stops(tmp_path):
    # the checkpoint written right after a resume recorded no table rows, so a second resume lost them
    cfg = make_cfg("controller=ppo_layerwise", "env.steps_per_action=2", "controller.hyperparams.n_steps=2",
                   "controller.hyperparams.batch_size=8", "trainer.epochs=4", *RUN[1:])
    train(cfg, tmp_path / "ref")
    stop_then_resume(cfg, tmp_path / "run", 5, 6)
    for name in ("metrics.csv", "layer_lrs.csv"):
        pd.testing.assert_frame_equal(table(tmp_path / "run" / name), table(tmp_path / "ref" / name))
    assert len(pd.read_csv(tmp_path / "run" / "layer_lrs.csv")) == 8 * 4  # 8 decisions x 4 layers


@pytest.mark.parametrize("damage, message", [
    (lambda csv: csv.unlink(), "metrics.csv is missing"),
    (lambda csv: csv.write_text("".join(csv.read_text().splitlines(keepends=True)[:2])), "is shorter (1 rows)"),
    (lambda csv: csv.write_text(csv.read_text().replace(",sgd,", ",sam,", 1)), "first 2 rows differ"),
])
def test_a_run_file_that_disagrees_with_its_checkpoint_is_refused_and_left_alone(tmp_path, monkeypatch, damage, message):
    args = ["train", "controller=sgd", *RUN, "trainer.epochs=5", "hydra.run.dir=run"]
    stop_cli_at(monkeypatch, 3)
    with pytest.raises(Stop):
        call_cli(*args, cwd=tmp_path)
    damage(tmp_path / "run" / "metrics.csv")
    before = snapshot(tmp_path / "run")
    for again in (args, ["train", "resume=run"]):
        result = call_cli(*again, cwd=tmp_path)
        assert result.returncode == 2 and message in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
        assert snapshot(tmp_path / "run") == before


def test_rerunning_with_another_config_is_refused_naming_the_keys_and_changes_nothing(tmp_path, monkeypatch):
    args = ["controller=sgd", *RUN, "trainer.epochs=4", "hydra.run.dir=run"]
    stop_cli_at(monkeypatch, 2)
    with pytest.raises(Stop):
        call_cli("train", *args, cwd=tmp_path)
    monkeypatch.undo()
    before = snapshot(tmp_path / "run")
    assert ".hydra/config.yaml" in before
    for other, keys in ((["seed=1"], "(seed differ"),
                        (["controller=adam"], "(controller.actions.choices, controller.name differ")):
        result = call_cli("train", *args, *other, cwd=tmp_path)
        assert result.returncode == 2 and keys in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
        assert snapshot(tmp_path / "run") == before, "a refused run changed the folder"
    # the same config, with only what is shown differing, continues it
    assert call_cli("train", *args, "trainer.progress=false", cwd=tmp_path).returncode == 0
    assert list(pd.read_csv(tmp_path / "run" / "metrics.csv")["step"]) == [1, 2, 3, 4]


def test_a_second_process_is_refused_with_the_holders_pid(tmp_path):
    with RunFolder(tmp_path / "run") as folder:
        folder.claim(make_cfg("controller=sgd"), starting_over=True)
        result = call_cli("train", "controller=sgd", *RUN, "hydra.run.dir=run", cwd=tmp_path)
        with pytest.raises(RunRefused, match=f"pid {os.getpid()}"):
            train(make_cfg("controller=sgd"), tmp_path / "run")
    assert result.returncode == 2 and f"in use by another rlopt process (pid {os.getpid()})" in result.stderr
    assert not (tmp_path / "run" / "summary.json").exists() and not (tmp_path / "run" / "metrics.csv").exists()
    # released with its holder: the folder is free again
    assert call_cli("train", "controller=sgd", *RUN, "hydra.run.dir=run", cwd=tmp_path).returncode == 0


def test_resume_writes_only_into_its_folder_and_its_log(tmp_path, monkeypatch):
    stop_cli_at(monkeypatch, 2)
    with pytest.raises(Stop):
        call_cli("train", "controller=sgd", *RUN, "trainer.epochs=3", "hydra.run.dir=run", cwd=tmp_path)
    monkeypatch.undo()
    (tmp_path / "run" / ".checkpoint.pt.x1y2.tmp").write_bytes(b"half a checkpoint")
    (tmp_path / "run" / ".hydra" / ".config.yaml.x1y2.tmp").write_text("half a config")
    overrides = (tmp_path / "run" / ".hydra" / "overrides.yaml").read_bytes()
    result = call_cli("train", "resume=run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"], "a resume wrote outside its folder"
    assert "resuming" in (tmp_path / "run" / "train.log").read_text()
    assert not list((tmp_path / "run").rglob("*.tmp")), "temporary files of interrupted writes stayed"
    assert (tmp_path / "run" / ".hydra" / "overrides.yaml").read_bytes() == overrides


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupt_is_one_line_a_status_and_resumes_exactly(tmp_path, monkeypatch, sig, code):
    args = ["controller=random", *RUN, "trainer.epochs=4"]
    assert call_cli("train", *args, "hydra.run.dir=ref", cwd=tmp_path).returncode == 0
    before = signal.getsignal(sig)  # pytest's, or SIG_IGN where the suite runs in the background
    stop_cli_at(monkeypatch, 2, lambda: os.kill(os.getpid(), sig))
    result = call_cli("train", *args, "hydra.run.dir=run", cwd=tmp_path)
    monkeypatch.undo()
    assert result.returncode == code
    assert result.stderr.strip() == f"rlopt train: interrupted at step 2; continue with: rlopt train resume={tmp_path / 'run'}"
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "interrupted"
    assert signal.getsignal(sig) == before, "the run's handler stayed installed"
    assert call_cli("train", "resume=run", cwd=tmp_path).returncode == 0
    pd.testing.assert_frame_equal(table(tmp_path / "run" / "metrics.csv"), table(tmp_path / "ref" / "metrics.csv"))


def test_a_resume_reads_the_data_from_where_the_run_did(tmp_path, monkeypatch):
    monkeypatch.setenv("RLOPT_DATA", str(tmp_path / "first"))
    cfg = make_cfg("controller=sgd", "trainer.epochs=3", "dataset.root=${oc.env:RLOPT_DATA,data}")
    with pytest.raises(Stop):
        train(cfg, tmp_path / "run", observers=[stop_at(2)])
    monkeypatch.setenv("RLOPT_DATA", str(tmp_path / "elsewhere"))
    saved, _ = resume_target(str(tmp_path / "run"))
    assert saved.dataset.root == str(tmp_path / "first")
    train(cfg, tmp_path / "run")  # an auto-resume under the other $RLOPT_DATA is still the same run
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "completed"


def _run_python(code: str, cwd, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_a_kill_while_finishing_resumes_to_the_files_of_an_uninterrupted_run(tmp_path):
    # killed while writing the plots: the folder must not say `completed` (it did: summary.json came first)
    args = ["train", "controller=sgd", *RUN, "trainer.epochs=3", "trainer.plots=true"]
    assert call_cli(*args, "hydra.run.dir=ref", cwd=tmp_path).returncode == 0
    kill_in_plots = ("import os, signal, rlopt.reporting.plots as p; "
                     "p.plot_run = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL); "
                     f"from rlopt.cli import main; main({[*args, 'hydra.run.dir=run']!r})")
    assert _run_python(kill_in_plots, tmp_path).returncode == -signal.SIGKILL
    summary = tmp_path / "run" / "summary.json"
    assert not summary.exists() or json.loads(summary.read_text())["status"] != "completed"
    assert call_cli("train", "resume=run", cwd=tmp_path).returncode == 0
    ref, run = snapshot(tmp_path / "ref"), snapshot(tmp_path / "run")
    assert sorted(run) == sorted(ref) and all(run[name] == ref[name] for name in run if name.endswith(".png"))


@pytest.mark.slow
def test_fault_injection_campaign(tmp_path):
    """Every controller family, SIGKILLed at seeded points (mid-run, inside a checkpoint write, in finishing,
    after summary.json), resumed, then compared file by file with an uninterrupted run (tests/fault_campaign.py)."""
    result = subprocess.run([sys.executable, str(REPO / "tests" / "fault_campaign.py"), str(tmp_path / "campaign")],
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                            timeout=600)
    report = json.loads(result.stdout)
    assert len(report) == 9
    for family, outcome in report.items():
        assert outcome["reference_exit"] == 0 and outcome["exit_codes"][-1] == 0, (family, outcome, result.stderr[-2000:])
        assert all(outcome["happened"]) and len(outcome["happened"]) >= 3, (family, outcome)
        assert any(k.startswith("checkpoint") for k in outcome["kills"]) and "summary:1" in outcome["kills"]
        assert outcome["files_compared"] >= 7 and outcome["differences"] == [], (family, outcome)
    assert result.returncode == 0


# -- issue 26: a full disk, signals outside a run, a resumed DQN's policy.zip ---------------------------------------------
def fill_disk_under(monkeypatch, folder):
    """From now on, writing under `folder` fails as on a full disk (ENOSPC): no file can be created there (every whole
    file rlopt writes, checkpoint, summary, plots, policy, starts as a new temporary file) and no CSV row appended.
    What this simulates, and what not: rlopt's own writes failing with ENOSPC at a chosen point, the failure writer
    included; not a real file system running full (torch's, TensorBoard's and logging's own writes go on here).
    `test_a_full_tmpfs_...` below fills a real one where the machine lets the test mount it."""
    import errno

    from rlopt.metrics import MetricsWriter

    def no_space(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    real_open = os.open

    def open_(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and str(path).startswith(str(folder)):
            no_space()
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(MetricsWriter, "_emit", no_space)


def test_a_full_disk_is_one_line_and_what_was_committed_resumes(tmp_path, monkeypatch):
    args = ["controller=sgd", *RUN, "trainer.epochs=4"]
    assert call_cli("train", *args, "hydra.run.dir=ref", cwd=tmp_path).returncode == 0
    run = tmp_path / "run"
    stop_cli_at(monkeypatch, 2, lambda: fill_disk_under(monkeypatch, run))  # full from the 2nd step's checkpoint on
    result = call_cli("train", *args, "hydra.run.dir=run", cwd=tmp_path)
    monkeypatch.undo()  # room again
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == (f"rlopt train: error: [Errno 28] No space left on device; what the run wrote stays in "
                                     f"{run}; once that is fixed, continue with: rlopt train resume={run}")
    assert not (run / "summary.json").exists(), "the failure writer had no room either, and must not crash"
    assert len(pd.read_csv(run / "metrics.csv")) == 2 and not list(run.glob(".*.tmp"))
    assert call_cli("train", "resume=run", cwd=tmp_path).returncode == 0
    pd.testing.assert_frame_equal(table(run / "metrics.csv"), table(tmp_path / "ref" / "metrics.csv"))


@pytest.mark.slow
def test_a_full_tmpfs_is_one_line_and_the_run_resumes_once_there_is_room(tmp_path, tmpfs):
    # a real full disk: 6 MB, 3 MB taken, so the first checkpoint (~1.8 MB) fits and the second one's
    # temporary file does not (torch.save straight to a file would have made that a RuntimeError)
    args = ["controller=sgd", "+debug=tiny", "trainer.threads=1", "trainer.epochs=4"]
    assert call_cli("train", *args, "hydra.run.dir=ref", cwd=tmp_path).returncode == 0
    disk = tmpfs("6m")
    (disk / "filler").write_bytes(bytes(3_000_000))
    result = call_cli("train", *args, f"hydra.run.dir={disk / 'run'}", cwd=tmp_path)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "No space left on device" in result.stderr and f"rlopt train resume={disk / 'run'}" in result.stderr
    (disk / "filler").unlink()
    assert call_cli("train", f"resume={disk / 'run'}", cwd=tmp_path).returncode == 0
    pd.testing.assert_frame_equal(table(disk / "run" / "metrics.csv"), table(tmp_path / "ref" / "metrics.csv"))


@pytest.mark.parametrize("command, where, sig, code", [
    ("train", "rlopt.cli.check_values", signal.SIGINT, 130),      # start-up: composed, not yet importing torch
    ("train", "rlopt.cli.check_values", signal.SIGTERM, 143),
    ("train", "rlopt.run.experiment.pin_data_root", signal.SIGTERM, 143),  # torch imported, no run yet
    ("report", "rlopt.report.find_runs", signal.SIGINT, 130),     # while a report reads its runs
])
def test_a_signal_outside_a_run_is_one_line(tmp_path, monkeypatch, command, where, sig, code, trained_run):
    import importlib

    module, name = where.rsplit(".", 1)
    real = getattr(importlib.import_module(module), name)

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), sig)  # delivered at once, in this (the main) thread
        return real(*args, **kwargs)

    monkeypatch.setattr(importlib.import_module(module), name, signalled)
    args = [str(trained_run("ppo_2opt"))] if command == "report" else ["controller=sgd", *RUN, "hydra.run.dir=run"]
    # an interactive command's SIGINT handler (Python's own; a suite started in the background inherits SIG_IGN)
    found = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        result = call_cli(command, *args, cwd=tmp_path)
    finally:
        signal.signal(signal.SIGINT, found)
    assert result.returncode == code, result.stderr
    assert result.stderr.strip() == f"rlopt {command}: interrupted by {signal.Signals(sig).name} before it finished"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, "the CLI's SIGTERM handler stayed installed"


def test_a_resumed_dqn_saves_the_policy_an_uninterrupted_run_saves(tmp_path):
    import zipfile

    from rlopt.controllers.sb3 import load_policy

    cfg = make_cfg(*AGENTS["dqn_2opt"], "reward=loss_delta", "trainer.threads=1")
    train(cfg, tmp_path / "ref")
    stop_then_resume(cfg, tmp_path / "run", 3)
    ref, run = (zipfile.ZipFile(tmp_path / name / "policy.zip") for name in ("ref", "run"))
    assert ref.namelist() == run.namelist()
    for member in ref.namelist():
        a, b = ref.read(member), run.read(member)
        if member == "data":  # only SB3's wall clock differs (and, between processes, the memory addresses it prints)
            a, b = (json.loads(x) for x in (a, b))
            assert a.pop("start_time") != b.pop("start_time")
        assert a == b, member
    (ref_model, _), (run_model, _) = (load_policy(str(tmp_path / name / "policy.zip")) for name in ("ref", "run"))
    obs = torch.as_tensor(np.random.default_rng(0).normal(size=(64, *ref_model.observation_space.shape)), dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(ref_model.q_net(obs), run_model.q_net(obs))


def test_ctrl_c_in_a_tune_names_the_tune_folder_to_resume(tmp_path, monkeypatch):
    stop_cli_at(monkeypatch, 2, lambda: os.kill(os.getpid(), signal.SIGINT))
    result = call_cli("tune", "+debug=tiny", "trainer.epochs=3", "tune.n_trials=2", "tune.dir=t", "hydra.run.dir=t",
                      cwd=tmp_path)
    assert result.returncode == 130
    assert result.stderr.strip().splitlines()[-1] == "rlopt tune: interrupted at step 2; continue with: rlopt tune resume=t"
