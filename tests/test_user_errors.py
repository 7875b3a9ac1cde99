"""A user's mistake at the command line: one line naming the key and what is allowed, exit status 2, for
every command; nothing trained."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from conftest import REPO
from rlopt.config import options

TINY = ["+debug=tiny", "trainer.epochs=1"]


def _available(group: str) -> str:
    return f"{group}=nope is unknown; available: {', '.join(options(group))}"


def _one_line(result, command: str) -> str:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"rlopt {command}: error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("command", ["train", "evaluate"])
@pytest.mark.parametrize("override, expected", [
    ("controller=nope", [_available("controller")]),
    ("model=nope", [_available("model")]),
    ("foo=1", ["foo is not a known key", "dataset, model, controller, reward, seed"]),
    ("trainer.epoch=3", ["trainer.epoch is not a known key", "trainer has: epochs, max_steps"]),
    ("experiment=nope", [_available("experiment")]),
    ("seed=abc", ["seed=abc is not allowed"]),
    ("seed=1e20", ["seed=1e+20 is not allowed"]),
])
def test_hydra_level_mistakes_are_one_line(cli_inproc, tmp_path, command, override, expected):
    policy = ["policy=p.zip"] if command == "evaluate" else []
    line = _one_line(cli_inproc(command, *TINY, *policy, override, "hydra.run.dir=run", cwd=tmp_path), command)
    for text in expected:
        assert text in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override, key", [("controller=nope", "controller"), ("model=nope", "model"),
                                           ("foo=1", "foo"), ("trainer.epoch=3", "trainer")])
def test_report_names_its_own_keys(cli_inproc, tmp_path, override, key):
    line = _one_line(cli_inproc("report", override, cwd=tmp_path), "report")
    assert key in line and "dirs, sweep, runs_csv, out" in line


def test_seed_outside_the_agents_range_is_refused_before_training(cli_inproc, tmp_path):
    line = _one_line(cli_inproc("train", *TINY, "seed=4294967296", "hydra.run.dir=run", cwd=tmp_path), "train")
    assert "seed=4294967296" in line and "4294967295" in line
    assert not (tmp_path / "run" / "metrics.csv").exists()


def test_evaluate_without_a_policy(cli_inproc, tmp_path):
    line = _one_line(cli_inproc("evaluate", *TINY, "hydra.run.dir=run", cwd=tmp_path), "evaluate")
    assert "policy is required" in line and "policy=PATH" in line


@pytest.mark.parametrize("override, expected", [
    ("controller.hyperparams.batch_size=-5", "controller.hyperparams.batch_size=-5 is not allowed: use a positive integer"),
    ("controller.hyperparams.train_freq=0", "controller.hyperparams.train_freq=0 is not allowed"),
    ("+controller.hyperparams.n_epochs=3", "controller.hyperparams.n_epochs is not a dqn hyperparameter; available:"),
])
def test_agent_hyperparameters_sb3_would_reject_mid_run_fail_up_front(cli_inproc, tmp_path, override, expected):
    # 6 steps: past learning_starts=2, so SB3 would reach the gradient step where it fails, mid-run
    line = _one_line(cli_inproc("train", *TINY, "controller=dqn_2opt", "trainer.epochs=6", override,
                                "hydra.run.dir=run", cwd=tmp_path), "train")
    assert expected in line
    assert not (tmp_path / "run" / "metrics.csv").exists()


def test_resume_with_multirun_is_refused_before_any_job(cli_inproc, tmp_path):
    line = _one_line(cli_inproc("train", "-m", *TINY, "resume=somewhere", "seed=0,1",
                                "hydra.sweep.dir=sweep", cwd=tmp_path), "train")
    assert "resume=somewhere continues one run and takes no -m" in line and "hydra.sweep.dir" in line
    assert not (tmp_path / "sweep").exists()


# -- issue 26 ------------------------------------------------------------------------------------------------------------
def test_an_override_beside_resume_is_refused_naming_it(cli_inproc, tmp_path):
    assert cli_inproc("train", *TINY, "controller=sgd", "hydra.run.dir=run", cwd=tmp_path).returncode == 0
    line = _one_line(cli_inproc("train", "resume=run", "trainer.epochs=9", cwd=tmp_path), "train")
    assert line.startswith("rlopt train: error: trainer.epochs=9 is not allowed with resume=run") and "start a new run" in line


def test_evaluate_refuses_a_controller_beside_the_policy(cli_inproc, tmp_path, trained_run):
    policy = trained_run("ppo_2opt") / "policy.zip"
    line = _one_line(cli_inproc("evaluate", f"policy={policy}", "controller=ppo_lr", *TINY, "hydra.run.dir=run",
                                cwd=tmp_path), "evaluate")
    assert "controller=ppo_lr is not allowed with policy=" in line and "brings its own controller" in line


@pytest.mark.parametrize("command, key", [("train", "hydra.run.dir"), ("report", "out"), ("tune", "tune.dir")])
def test_an_output_folder_name_too_long_is_one_line(cli_inproc, tmp_path, command, key):
    line = _one_line(cli_inproc(command, *TINY, f"{key}={'x' * 300}/run", cwd=tmp_path), command)
    assert "cannot write the output folder" in line and "a folder name of 300 bytes; the file system allows 255" in line


@pytest.mark.parametrize("command, key", [("report", "out"), ("tune", "tune.dir")])
def test_an_output_folder_on_a_read_only_file_system_is_one_line(cli_inproc, tmp_path, tmpfs, command, key):
    folder = tmpfs("1m", read_only=True)
    line = _one_line(cli_inproc(command, *TINY, f"{key}={folder / 'out'}", cwd=tmp_path), command)
    assert f"cannot write the output folder {folder / 'out'} (at {folder}: read-only file system)" in line


def test_report_lists_a_corrupt_summary_as_unreadable_and_reports_the_rest(cli_inproc, tmp_path):
    for seed in (0, 1):
        assert cli_inproc("train", *TINY, "controller=sgd", f"seed={seed}", f"hydra.run.dir=runs/s{seed}",
                          cwd=tmp_path).returncode == 0
    (tmp_path / "runs" / "s1" / "summary.json").write_text('{"status": "compl')
    result = cli_inproc("report", "runs", "out=rep", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "unreadable run" in result.stdout and "summary.json is unreadable (JSONDecodeError" in result.stdout
    assert "1 finished runs, 1 failed or incomplete" in result.stdout
    runs = pd.read_csv(tmp_path / "rep" / "runs.csv")
    assert sorted(runs["status"]) == ["completed", "unreadable"]


def test_command_help_lists_the_groups_without_composing(cli_inproc, tmp_path):
    result = cli_inproc("train", "--help", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("usage: rlopt train")
    assert f"  controller: {', '.join(options('controller'))}" in result.stdout and "--cfg job" in result.stdout


def test_the_cli_imports_nothing_heavy_before_the_config_is_composed_and_checked(tmp_path):
    """--cfg job, --help and a refused value answer without torch, SB3, scikit-learn or matplotlib; a fixed baseline's
    whole run imports torch but none of the other three (SB3 is for agents, matplotlib for plots)."""
    code = """if True:
        import json, sys
        from rlopt.cli import main
        heavy = ("torch", "stable_baselines3", "sklearn", "matplotlib")
        seen = {}
        for args in (["train", "--cfg", "job"], ["train", "--help"], ["train", "seed=-1"], ["evaluate"],
                     ["report", "out=r"], ["train", "+debug=tiny", "controller=sgd", "trainer.epochs=1", "hydra.run.dir=run"]):
            try:
                main(args)
            except SystemExit:
                pass
            seen[" ".join(args)] = sorted(name for name in heavy if name in sys.modules)
        print(json.dumps(seen))
    """
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert all(imported == [] for args, imported in seen.items() if "debug" not in args), seen
    assert seen["train +debug=tiny controller=sgd trainer.epochs=1 hydra.run.dir=run"] == ["torch"], seen
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "completed"
