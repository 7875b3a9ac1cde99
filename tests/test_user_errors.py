"""A user's mistake at the command line: one line naming the key and what is allowed, exit status 2, for
every command; nothing trained."""

from __future__ import annotations

import pytest

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
    assert key in line and "dirs, sweep, out" in line


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
