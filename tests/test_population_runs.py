"""`controller.n_envs=K controller.vectorize=population` end to end: the rows, TensorBoard, the same learning as
`vectorize=processes`, kill -9 and resume, and bad K in one line."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import call_cli, make_cfg
from rlopt.train import train
from test_parallel import EXACT, TIMING, _learning_runs_in_tensorboard, kill_while_learning_then_resume

POLY = ["dataset=polynomial", "controller=ppo_lr", "dataset.train_subset=null", *EXACT]
POPULATION = ["controller.vectorize=population"]


def test_k_runs_learn_as_one_population_with_the_rows_and_tensorboard_of_k_processes(tmp_path):
    summary = train(make_cfg(*POLY, *POPULATION, "controller.episodes=6", "controller.n_envs=3", "seed=2"), tmp_path)
    learning = pd.read_csv(tmp_path / "learning_metrics.csv")
    per_run = learning.groupby("episode")
    assert sorted(per_run.groups) == list(range(6)) and (per_run.size() == 2).all()  # 2 decisions per run
    assert (learning["run_seed"] == 2 + learning["episode"]).all()
    assert (learning["env"] == learning["episode"] % 3).all()
    assert set(pd.read_csv(tmp_path / "metrics.csv")["episode"]) == {6}
    assert summary["status"] == "completed" and summary["n_envs"] == 3 and summary["vectorize"] == "population"
    _learning_runs_in_tensorboard(tmp_path)


@pytest.mark.slow
def test_population_mode_learns_exactly_as_processes_mode(tmp_path):
    """Same agent, same runs: identical actions, steps and counts; losses and rewards within 1e-5."""
    args = [*POLY, "controller.episodes=4", "controller.n_envs=2"]
    for vectorize in ("processes", "population"):
        assert call_cli("train", *args, f"controller.vectorize={vectorize}", f"hydra.run.dir={vectorize}",
                        "+debug=tiny", cwd=tmp_path).returncode == 0
    for name in ("learning_metrics.csv", "metrics.csv"):
        got, want = (pd.read_csv(tmp_path / run / name).drop(columns=TIMING) for run in ("population", "processes"))
        floats = ["lr", "train_loss", "val_loss", "reward", "grad_norm"]
        pd.testing.assert_frame_equal(got.drop(columns=floats), want.drop(columns=floats))
        # rewards are differences of losses: compared on the scale of the losses (~0.3)
        pd.testing.assert_frame_equal(got[floats], want[floats], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_sigkill_while_a_population_of_8_learns_then_resume_equals_the_uninterrupted_run(tmp_path):
    args = ["+debug=tiny", *POLY, *POPULATION, "controller.episodes=16", "controller.n_envs=8",
            "controller.hyperparams.n_steps=2", "controller.hyperparams.batch_size=16"]
    # PPO checkpoints every n_steps=2 batched steps (16 rows): killed after 3 steps, one step is redone
    kill_while_learning_then_resume(tmp_path, args, rows=24)
    assert len(pd.read_csv(tmp_path / "run" / "learning_metrics.csv")) == 32
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "completed"


@pytest.mark.parametrize("k", ["0", "-2", "abc"])
def test_bad_k_is_one_line(tmp_path, k):
    done = call_cli("train", "+debug=tiny", *POLY, *POPULATION, "controller.episodes=4", f"controller.n_envs={k}",
                    cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if "controller.n_envs" in line], done.stderr


def test_a_vectorize_mode_that_does_not_exist_is_one_line(tmp_path):
    done = call_cli("train", "+debug=tiny", *POLY, "controller.vectorize=threads", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "controller.vectorize" in done.stderr
