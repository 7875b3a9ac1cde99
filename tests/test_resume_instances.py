"""Issue 24: an agent learning across an instance set, killed with SIGKILL while it learns (and again in its final run),
then run again by the same command, ends with the files of an uninterrupted run: each restored environment trains
the instance its run in progress drew (`TrainingEnv.run_tasks`), in the main process and in the K worker processes."""

from __future__ import annotations

import json
import signal
import zipfile

import pandas as pd
import pytest
import torch

from conftest import call_cli


def _poly(iid: str, degree: int, steps: int) -> str:
    return (f"{{id: {iid}, dataset: {{name: polynomial, degree: {degree}}}, model: {{name: maclaurin}}, "
            f"trainer: {{max_steps: {steps}, batch_size: 32}}}}")


# Two train instances of different architectures (the maclaurin output layer follows the degree), so a run restored
# onto the wrong one cannot even load its weights; 4 and 3 decisions per run. PPO checkpoints every 2 batched steps.
SET = ["+debug=tiny", "instances.name=tiny", f"instances.train=[{_poly('a', 2, 20)},{_poly('b', 3, 15)}]",
       f"instances.test=[{_poly('c', 4, 20)}]", "env.steps_per_action=5", "trainer.tensorboard=false",
       "trainer.threads=1", "controller=ppo_lr", "controller.hyperparams.n_steps=2", "controller.hyperparams.batch_size=2"]
TIMING_COLUMNS = ["epoch_time_s", "controller_time_s", "checkpoint_time_s"]
TIMING_KEYS = {"wall_time_s", "controller_time_s", "controller_time_share", "checkpoint_time_s", "epoch_time_s",
               "learning_wait_share"}


@pytest.mark.slow
@pytest.mark.parametrize(("n_envs", "vectorize", "episodes", "kills"), [
    # K=1 runs draw b, a, b, then a (final): row 6 is in run 1 (a), after the checkpoint of its first step; the
    # resumed process redoes rows 5-10 and is killed on its 8th row, the final run's 2nd
    (1, "processes", 3, ["row:6", "row:8"]),
    # K=2: worker 0 runs b, b, worker 1 a, a, the final run b: row 10 is two rows past the checkpoint of batched
    # step 4, where each worker is in another run (the final run's restore is K=1's)
    (2, "processes", 4, ["row:10"]),
    # population mode: each member's restored task is re-derived from its saved run seed (MemberEnv.load_state_dict)
    (2, "population", 4, ["row:10", "row:10"]),
])
def test_an_agent_learning_across_instances_killed_resumes_to_an_uninterrupted_runs_files(
        tmp_path, cli, n_envs, vectorize, episodes, kills):
    args = ["train", *SET, f"controller.episodes={episodes}", f"controller.n_envs={n_envs}",
            f"controller.vectorize={vectorize}"]
    assert call_cli(*args, "hydra.run.dir=ref", cwd=tmp_path).returncode == 0
    run = tmp_path / "run"
    for kill, phase in zip(kills, ["learn", "final"], strict=False):
        killed = cli(*args, "hydra.run.dir=run", cwd=tmp_path, env_extra={"RLOPT_TEST_KILL_AT": kill})
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert not (run / "summary.json").exists()
        assert torch.load(run / "checkpoint.pt", weights_only=False)["controller"]["phase"] == phase
    again = call_cli(*args, "hydra.run.dir=run", cwd=tmp_path)  # the same command, into the same folder
    assert again.returncode == 0, again.stderr

    learning = pd.read_csv(run / "learning_metrics.csv")
    assert set(learning["instance"]) == {"a", "b"}  # the runs did train the drawn instances
    for name in ("learning_metrics.csv", "metrics.csv"):
        got, want = (pd.read_csv(folder / name).drop(columns=TIMING_COLUMNS) for folder in (run, tmp_path / "ref"))
        pd.testing.assert_frame_equal(got, want)
    got, want = (json.loads((folder / "summary.json").read_text()) for folder in (run, tmp_path / "ref"))
    assert got["status"] == "completed" and got["instance"] == ("a" if n_envs == 1 else "b")
    assert {k: v for k, v in got.items() if k not in TIMING_KEYS} == {k: v for k, v in want.items() if k not in TIMING_KEYS}
    got, want = (zipfile.ZipFile(folder / "policy.zip") for folder in (run, tmp_path / "ref"))
    assert got.namelist() == want.namelist()
    for member in got.namelist():  # SB3's `data` holds its wall clock and memory addresses
        assert member == "data" or got.read(member) == want.read(member), member
    assert not (run / "checkpoint.pt").exists()
