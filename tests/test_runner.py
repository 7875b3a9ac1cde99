"""The runner around the environment: the env writes nothing itself, every row reaches the observers,
a failing observer fails the run without losing what was written, and rlopt.env needs no SB3."""

from __future__ import annotations

import json
import subprocess
import sys

import gymnasium
import numpy as np
import pandas as pd
import pytest

from conftest import REPO, make_cfg
from rlopt.env import LAYERWISE_ENV_ID
from rlopt.train import train

TIMING = ["epoch_time_s", "controller_time_s", "checkpoint_time_s"]


@pytest.mark.slow
def test_importing_the_environments_does_not_import_stable_baselines3():
    code = "import sys, rlopt.env; print('stable_baselines3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stdout


def test_the_env_returns_its_rows_and_leaves_the_driver_s_columns_out(tmp_path):
    env = gymnasium.make(LAYERWISE_ENV_ID, cfg=make_cfg("controller=ppo_layerwise", "env.steps_per_action=1",
                                                        "trainer.epochs=1", "trainer.batch_size=128")).unwrapped
    env.reset(seed=0)
    *_, info = env.step(np.array([0, 1, 2, 1]))
    assert info["metrics"]["step"] == 1 and "controller_time_s" not in info["metrics"]
    assert [row["layer"] for row in info["layer_rows"]] == [0, 1, 2, 3] and info["extra_time_s"] == 0.0
    assert not list(tmp_path.iterdir()) and not hasattr(env, "recorder")


def test_observers_see_every_controlled_row_in_order_after_it_is_written(tmp_path):
    seen, on_disk = [], []

    def observer(row):
        seen.append(dict(row))
        on_disk.append(len(pd.read_csv(tmp_path / "metrics.csv")))

    # one learning episode (learning_metrics.csv: not observed), then the controlled run
    train(make_cfg("controller=ppo_2opt", "controller.episodes=1", "trainer.epochs=3"), tmp_path, observers=[observer])
    written = pd.read_csv(tmp_path / "metrics.csv")
    assert len(pd.read_csv(tmp_path / "learning_metrics.csv")) == 3
    assert on_disk == [1, 2, 3], "an observer must be called after its row is in metrics.csv"
    pd.testing.assert_frame_equal(pd.DataFrame(seen)[list(written.columns)].drop(columns=TIMING),
                                  written.drop(columns=TIMING), check_dtype=False)


def test_an_observer_that_raises_fails_the_run_and_keeps_what_was_written(tmp_path):
    class Stop(Exception):
        pass

    def observer(row):
        if row["step"] == 2:
            raise Stop("enough")

    with pytest.raises(Stop):
        train(make_cfg("controller=sgd", "trainer.epochs=4"), tmp_path, observers=[observer])
    assert list(pd.read_csv(tmp_path / "metrics.csv")["step"]) == [1, 2]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == "Stop: enough"
    assert summary["model"] == "digits_cnn", "a failed run names the model that `auto` stood for"
