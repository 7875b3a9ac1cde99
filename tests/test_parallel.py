"""Many training runs at once (`controller.n_envs`), `rlopt evaluate runs=K`, and the TensorBoard live view."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import call_cli, kill_at, make_cfg
from rlopt.controllers import build_controller
from rlopt.controllers.sb3_env import LayerRunsVecEnv, RunSlot
from rlopt.env import make_env
from rlopt.errors import UserError
from rlopt.evaluate import evaluate
from rlopt.report import report
from rlopt.run.protocol import RunContext
from rlopt.tensorboard_log import TAGS
from rlopt.train import train

TIMING = ["epoch_time_s", "controller_time_s", "checkpoint_time_s"]
# loss_delta: the composite reward charges wall time; one thread: the same float sums in every process
EXACT = ["reward=loss_delta", "trainer.threads=1"]


def scalars(log_dir) -> dict[str, dict[int, float]]:
    """tag -> {step: value} from the event files in `log_dir`, read with TensorBoard's own reader (the last value
    written for a step wins, as TensorBoard shows it)."""
    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


def test_tensorboard_holds_every_row_and_the_agent_logs_and_changes_nothing(tmp_path):
    args = ["controller=ppo_2opt", "trainer.epochs=9", *EXACT]
    summary = train(make_cfg(*args), tmp_path / "on")
    rows = pd.read_csv(tmp_path / "on" / "metrics.csv")
    got = scalars(tmp_path / "on" / "tb")
    for row in rows.to_dict("records"):
        for column in ("val_acc", "val_loss", "train_loss", "lr", "reward", "grad_evals"):
            assert got[TAGS[column]][row["step"]] == pytest.approx(row[column], rel=1e-6), (column, row["step"])
        assert got["control/optimizer"][row["step"]] == ["sgd", "sam"].index(row["optimizer"])
    agent = scalars(tmp_path / "on" / "tb" / "agent_1")  # SB3's own logs: two PPO updates in 9 steps
    assert {"train/entropy_loss", "train/value_loss", "train/explained_variance", "train/policy_gradient_loss"} <= set(agent)
    assert summary["gpu_peak_memory_mb"] is None and summary["n_envs"] == 1  # CPU: no GPU memory to report

    train(make_cfg(*args, "trainer.tensorboard=false"), tmp_path / "off")
    assert not (tmp_path / "off" / "tb").exists()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "off" / "metrics.csv").drop(columns=TIMING),
                                  rows.drop(columns=TIMING))


def _learning_runs_in_tensorboard(run_dir) -> None:
    """Every learning row is in tb/learning/run_<episode>/ at its step; the final run's rows in tb/ itself."""
    learning = pd.read_csv(run_dir / "learning_metrics.csv")
    for episode, rows in learning.groupby("episode"):
        got = scalars(run_dir / "tb" / "learning" / f"run_{episode:03d}")
        assert got["val/loss"] == pytest.approx(dict(zip(rows["step"], rows["val_loss"], strict=True)), rel=1e-6)
    assert sorted(p.name for p in (run_dir / "tb" / "learning").iterdir()) == [
        f"run_{i:03d}" for i in sorted(learning["episode"].unique())]
    final = pd.read_csv(run_dir / "metrics.csv")
    assert scalars(run_dir / "tb")["val/loss"] == pytest.approx(dict(zip(final["step"], final["val_loss"], strict=True)),
                                                                 rel=1e-6)


def test_the_runs_an_agent_learns_from_are_tensorboard_runs_of_their_own(tmp_path):
    train(make_cfg("controller=ppo_2opt", "controller.episodes=2", "trainer.epochs=3"), tmp_path)
    _learning_runs_in_tensorboard(tmp_path)


def test_dqn_logs_its_exploration_rate(tmp_path):
    train(make_cfg("controller=dqn_2opt", "trainer.epochs=3"), tmp_path)
    agent = scalars(tmp_path / "tb" / "agent_1")
    assert 0 < list(agent["rollout/exploration_rate"].values())[-1] < 1


@pytest.mark.parametrize(("overrides", "message"), [
    (["controller.n_envs=0"], "controller.n_envs=0 is not allowed"),
    (["controller.n_envs=2"], "needs controller.episodes to be a positive multiple of it (got 0)"),
    (["controller.n_envs=2", "controller.episodes=3"], "(got 3)"),
])
def test_bad_n_envs_is_one_clear_error(overrides, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_controller(make_cfg("controller=ppo_2opt", *overrides).controller, 0)


def test_a_k_run_agent_resumed_in_its_final_run_acts_without_workers():
    """Resumed after learning (phase `final`), an n_envs=2 agent is loaded without its worker processes and acts."""
    cfg = make_cfg("controller=ppo_2opt", "controller.episodes=2")
    env = make_env(cfg)
    learned = build_controller(cfg.controller, 0)
    context = RunContext(run_dir=Path("unused"), tb_dir=None, config=cfg,
                         record_rows=lambda infos, elapsed: pytest.fail("an agent in its final run records no batch"))
    learned.setup(env, None, context)
    state = learned._state("final", 2)
    resumed = build_controller(make_cfg("controller=ppo_2opt", "controller.episodes=2", "controller.n_envs=2").controller, 0)
    resumed.setup(env, state, context)
    obs, _ = env.reset()
    assert resumed.learned and resumed.runs is None and resumed.model.get_env() is None
    assert resumed.act(obs) == learned.act(obs)


def test_evaluate_refuses_a_bad_runs_count(tmp_path):
    with pytest.raises(UserError, match="runs=0 is not allowed"):
        evaluate(make_cfg("policy=x.zip", "runs=0", config="evaluate"), tmp_path)


def test_run_slots_seed_their_runs_and_layer_runs_flatten_to_one_layer_each():
    """Two layer-wise runs as sub-environments 0 and 1 of 2 (in this process): run i trains with seed + i, rows
    carry it, and the agent sees runs x layers sub-environments that share their run's reward and end."""
    cfg = make_cfg("controller=ppo_layerwise", "env.steps_per_action=4", "seed=7", "trainer.max_steps=8")
    slots = [RunSlot(make_env(cfg), k, 2) for k in range(2)]
    bare = slots[0].unwrapped
    layers, features = bare.n_layers, bare.features.agent_space.shape[0]
    venv = LayerRunsVecEnv(DummyVecEnv([lambda s=s: s for s in slots]), layers, bare.features.agent_space,
                           bare.actions.agent_space)
    obs = venv.reset()
    assert obs.shape == (2 * layers, features) and [s.unwrapped.run_seed for s in slots] == [7, 8]
    seen = []
    for _ in range(2):  # 8 steps / 4 per decision: the runs end on the second step and restart
        obs, rewards, dones, infos = venv.step(np.ones(2 * layers, dtype=int))
        seen.append([(i["metrics"]["episode"], i["metrics"]["env"], i["metrics"]["run_seed"]) for i in infos[::layers]])
        assert (rewards[:layers] == rewards[0]).all() and (rewards[layers:] == rewards[layers]).all()
    assert seen == [[(0, 0, 7), (1, 1, 8)]] * 2
    assert dones.all() and infos[1]["terminal_observation"].shape == (features,)
    assert [s.unwrapped.run_seed for s in slots] == [9, 10]  # the second runs: global runs 2 and 3


@pytest.mark.slow
@pytest.mark.parametrize("controller", ["dqn_2opt", "ppo_layerwise env.steps_per_action=4"])
def test_k_runs_learn_at_once_with_distinct_seeds_then_one_run_is_controlled(tmp_path, controller):
    name, *extra = controller.split()
    summary = train(make_cfg(f"controller={name}", *extra, "controller.episodes=4", "controller.n_envs=2", "seed=3"),
                    tmp_path)
    learning = pd.read_csv(tmp_path / "learning_metrics.csv")
    per_run = learning.groupby("episode")
    assert sorted(per_run.groups) == [0, 1, 2, 3] and (per_run.size() == 2).all()  # 2 decisions per run
    assert (learning["run_seed"] == 3 + learning["episode"]).all()
    assert (learning["env"] == learning["episode"] % 2).all()
    final = pd.read_csv(tmp_path / "metrics.csv")
    assert set(final["episode"]) == {4} and len(final) == 2
    assert summary["status"] == "completed" and summary["n_envs"] == 2
    assert summary["learning_gpu_peak_memory_mb"] == [None, None] and 0 < summary["learning_wait_share"] < 1
    _learning_runs_in_tensorboard(tmp_path)  # two runs at a time, each sub-environment's writer switching runs
    if name == "ppo_layerwise":
        layer_rows = pd.read_csv(tmp_path / "learning_layer_lrs.csv")
        assert sorted(layer_rows["episode"].unique()) == [0, 1, 2, 3]
        assert (layer_rows.groupby(["episode", "step"]).size() == 4).all()  # digits_cnn: 4 layers


@pytest.mark.slow
def test_evaluate_runs_k_seeds_in_parallel_into_folders_report_aggregates(tmp_path, trained_run):
    policy = trained_run("ppo_2opt") / "policy.zip"
    summaries = evaluate(make_cfg(f"policy={policy}", "runs=2", "seed=4", config="evaluate"), tmp_path / "ev")
    assert [s["seed"] for s in summaries] == [4, 5] and all(s["status"] == "completed" for s in summaries)
    for i, seed in enumerate([4, 5]):
        run = tmp_path / "ev" / f"run{i}_s{seed}"
        assert len(pd.read_csv(run / "metrics.csv")) == 2 and (run / ".hydra" / "config.yaml").is_file()
    out = tmp_path / "rep"
    cfg = make_cfg(f"out={out}", config="report", tiny=False)
    cfg.dirs = [str(tmp_path / "ev")]
    report(cfg, out)
    table = pd.read_csv(out / "table.csv")
    assert list(table["n"]) == [2] and list(table["method"]) == ["ppo_2opt_frozen"]


@pytest.mark.slow
def test_sigkill_while_k_runs_learn_then_resume_equals_the_uninterrupted_run(tmp_path):
    """K=2: the checkpoint holds both workers' runs and RNGs; the resumed learning and final run are exact."""
    args = ["+debug=tiny", *EXACT, "controller=ppo_2opt", "controller.episodes=4", "controller.n_envs=2", "trainer.epochs=4"]
    # PPO checkpoints every n_steps=4 batched steps: after 6 (12 rows) the last checkpoint is 2 steps back
    kill_while_learning_then_resume(tmp_path, args, rows=12)
    assert len(pd.read_csv(tmp_path / "run" / "learning_metrics.csv")) == 16


def kill_while_learning_then_resume(tmp_path, args: list[str], rows: int) -> None:
    """`rlopt train ARGS` uninterrupted (ref/) and killed right after its `rows`-th learning row, then resumed
    (run/): the two folders' learning_metrics.csv and metrics.csv must be equal, timing aside."""
    assert call_cli("train", *args, "hydra.run.dir=ref", cwd=tmp_path).returncode == 0
    kill_at(f"row:{rows}", "train", *args, "hydra.run.dir=run", cwd=tmp_path)
    assert len(pd.read_csv(tmp_path / "run" / "learning_metrics.csv")) == rows
    assert not (tmp_path / "run" / "summary.json").exists()
    resumed = call_cli("train", "resume=run", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    for name in ("learning_metrics.csv", "metrics.csv"):
        got, want = (pd.read_csv(tmp_path / run / name).drop(columns=TIMING) for run in ("run", "ref"))
        pd.testing.assert_frame_equal(got, want)


@pytest.mark.slow
def test_tensorboard_after_a_resume_shows_the_resumed_rows(tmp_path):
    """Steps written before the kill and redone after the resume are in tb/ twice; the reader's value is the last."""
    args = ["+debug=tiny", *EXACT, "controller=ppo_2opt", "trainer.epochs=8"]
    kill_at("row:6", "train", *args, "hydra.run.dir=run", cwd=tmp_path)
    assert call_cli("train", "resume=run", cwd=tmp_path).returncode == 0
    rows = pd.read_csv(tmp_path / "run" / "metrics.csv")
    got = scalars(tmp_path / "run" / "tb")
    assert sorted(got["val/loss"]) == list(range(1, 9))
    for row in rows.to_dict("records"):
        assert got["val/loss"][row["step"]] == pytest.approx(row["val_loss"], rel=1e-6)
    assert math.isfinite(json.loads((tmp_path / "run" / "summary.json").read_text())["test_loss"])


@pytest.mark.slow
def test_evaluate_runs_k_with_failing_runs_is_one_line_and_exit_1(tmp_path, trained_run):
    """Each failed run records its own error; the command lists them in one line, no traceback, exit 1."""
    policy = trained_run("ppo_2opt") / "policy.zip"
    done = call_cli("evaluate", f"policy={policy}", "runs=2", "+debug=tiny", "dataset=mnist",
                    f"dataset.root={tmp_path / 'no_data'}", "dataset.download=false", "hydra.run.dir=ev", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("rlopt evaluate:")]
    assert len(lines) == 1 and "2 of 2 runs failed" in lines[0] and "Traceback" not in done.stderr
    for i, seed in enumerate([0, 1]):
        summary = json.loads((tmp_path / "ev" / f"run{i}_s{seed}" / "summary.json").read_text())
        assert summary["status"] == "failed" and "dataset" in summary["error"]
