"""The gymnasium environment and the SB3 controllers: checkers, learning, save/load/evaluate."""

from __future__ import annotations

import gymnasium
import numpy as np
import pandas as pd
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import DummyVecEnv

from conftest import make_cfg
from rlopt.controllers.sb3 import SB3Controller, _hyperparams, load_policy
from rlopt.env import make_env
from rlopt.evaluate import evaluate
from rlopt.train import train


@pytest.mark.parametrize("controller", ["ppo_2opt", "ppo_3opt"])
def test_env_passes_gymnasium_and_sb3_checkers(controller):
    env = gymnasium.make("rlopt/OptimizerSelection-v0",
                         cfg=make_cfg(f"controller={controller}", "trainer.epochs=1", "dataset.train_subset=64")).unwrapped
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)
    obs, _ = env.reset()
    assert obs.shape == (5 + env.action_space.n,)


def test_env_is_registered_with_gymnasium():
    env = gymnasium.make("rlopt/OptimizerSelection-v0", cfg=make_cfg("controller=ppo_2opt", "trainer.epochs=1"))
    obs, _ = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(1)
    assert terminated and info["metrics"]["optimizer"] == "sam" and np.isfinite(reward)


def test_default_state_is_the_reports_8_dims():
    env = make_env(make_cfg("controller=ppo_3opt", "trainer.epochs=3"))
    obs0, _ = env.reset()
    obs1, *_ = env.step(2)
    row_val = env.val
    assert obs1[0] == pytest.approx(row_val["acc"]) and obs1[1] == pytest.approx(row_val["loss"] / 2)
    assert obs1[2] == pytest.approx(row_val["acc"] - obs0[0], abs=1e-6)
    assert obs1[4] == pytest.approx(1 / 3, abs=1e-6)
    assert list(obs1[5:]) == [0, 0, 1] and list(obs0[5:]) == [0, 0, 0]


def test_optimizers_keep_their_state_across_switches():
    env = make_env(make_cfg("controller=ppo_3opt", "trainer.epochs=3"))
    env.reset()
    env.step(2)  # adam
    adam = env.bank.optimizers["adam"]
    moments = [s["exp_avg"].clone() for s in adam.state.values()]
    steps = [float(s["step"]) for s in adam.state.values()]
    env.step(0)  # sgd: adam's moments must not move
    assert all(torch.equal(m, s["exp_avg"]) for m, s in zip(moments, adam.state.values()))
    env.step(2)  # adam again continues its own step count
    assert [float(s["step"]) for s in adam.state.values()] == [2 * n for n in steps]


def _policy_params(model):
    return torch.cat([p.detach().flatten().clone() for p in model.policy.parameters()])


@pytest.mark.parametrize("controller", ["ppo_2opt", "dqn_3opt"])
def test_online_agent_learns_while_it_controls(tmp_path, controller):
    cfg = make_cfg(f"controller={controller}", "trainer.epochs=9")
    summary = train(cfg, tmp_path)
    assert summary["status"] == "completed"
    # The same seed builds the agent's initial policy; the saved one must differ from it.
    untrained = SB3Controller(cfg.controller, int(cfg.seed))._build(DummyVecEnv([lambda: make_env(cfg)]), None)
    trained, meta = load_policy(str(tmp_path / "policy.zip"))
    assert not torch.equal(_policy_params(untrained), _policy_params(trained)), "no learning happened"
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert len(df) == 9 and df["reward"].notna().all() and (df["controller_time_s"].iloc[1:] > 0).all()
    n_actions = {"ppo_2opt": 2, "dqn_3opt": 3}[controller]
    assert meta["observation_dim"] == 5 + n_actions


def test_episodes_mode_learns_over_runs_then_controls_a_final_run(tmp_path):
    train(make_cfg("controller=ppo_2opt", "controller.episodes=2", "trainer.epochs=2"), tmp_path)
    learning = pd.read_csv(tmp_path / "learning_metrics.csv")
    final = pd.read_csv(tmp_path / "metrics.csv")
    assert sorted(learning["episode"].unique()) == [0, 1] and len(learning) == 4
    assert len(final) == 2 and set(final["episode"]) == {2}  # run i trains with seed + i: the final run is N


def test_saved_policy_reproduces_actions_and_evaluates(tmp_path, trained_run):
    run = trained_run("ppo_3opt")
    model, meta = load_policy(str(run / "policy.zip"))
    assert meta["algo"] == "ppo" and meta["actions"]["choices"] == ["sgd", "sam", "adam"]
    rng = np.random.default_rng(0)
    observations = rng.normal(size=(20, 8)).astype(np.float32)
    first = [int(model.predict(o, deterministic=True)[0]) for o in observations]
    again, _ = load_policy(str(run / "policy.zip"))
    assert first == [int(again.predict(o, deterministic=True)[0]) for o in observations]

    cfg = make_cfg(f"policy={run / 'policy.zip'}", "seed=3", "trainer.epochs=3", config="evaluate")
    summary = evaluate(cfg, tmp_path / "eval")
    assert summary["status"] == "completed" and summary["controller"] == "ppo_3opt_frozen"
    df = pd.read_csv(tmp_path / "eval" / "metrics.csv")
    assert len(df) == 3 and set(df["optimizer"]) <= {"sgd", "sam", "adam"}


def test_random_controller_uses_every_action(tmp_path):
    summary = train(make_cfg("controller=random", "trainer.epochs=12", "dataset.train_subset=64"), tmp_path)
    assert set(summary["action_counts"]) == {"sgd", "sam", "adam"}


def _agent_adam(cfg, plain: bool = False):
    """The agent's optimizer settings as rlopt builds the agent, or (plain) as SB3 builds it from the same
    hyperparameters without rlopt's optimizer_kwargs."""
    venv = DummyVecEnv([lambda: make_env(cfg)])
    if plain:
        params = _hyperparams(cfg.controller)
        del params["policy_kwargs"]["optimizer_kwargs"]
        model = {"ppo": PPO, "dqn": DQN}[cfg.controller.algo]("MlpPolicy", venv, seed=0, device="cpu", **params)
    else:
        model = SB3Controller(cfg.controller, int(cfg.seed))._build(venv, None)
    assert type(model.policy.optimizer) is torch.optim.Adam
    return {k: v for k, v in model.policy.optimizer.param_groups[0].items() if k != "params"}


@pytest.mark.parametrize("controller", ["ppo_2opt", "dqn_2opt"])
def test_agents_update_with_fused_adam_and_otherwise_sb3s_own_settings(controller):
    cfg = make_cfg(f"controller={controller}")
    ours = _agent_adam(cfg)
    assert ours == {**_agent_adam(cfg, plain=True), "fused": True}
    assert ours["lr"] == cfg.controller.hyperparams.learning_rate
    # optimizer settings the user gives replace SB3's; fused still comes on top
    given = _agent_adam(make_cfg(f"controller={controller}", "+controller.hyperparams.policy_kwargs.optimizer_kwargs.eps=0.01"))
    assert given == {**ours, "eps": 0.01}
