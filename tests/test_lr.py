"""Learning-rate control: the action spaces, the schedule baselines, divergence, and the lr agents end to end."""

from __future__ import annotations

import functools
import json
import math

import gymnasium
import numpy as np
import pandas as pd
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from omegaconf import OmegaConf
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from conftest import make_cfg
from rlopt.controllers.exploration import ExponentialSchedule
from rlopt.controllers.sb3 import load_policy
from rlopt.env import make_env
from rlopt.env.actions import build_actions
from rlopt.errors import UserError
from rlopt.evaluate import evaluate, evaluation_config
from rlopt.optim import OptimizerBank
from rlopt.train import train

# The polynomial task, whole (192 training examples, 6 steps per epoch at batch 32), one CPU thread: fast.
POLY = ["experiment=lr_polynomial", "dataset.train_subset=null", "dataset.val_size=32", "trainer.device=cpu"]
GRID = np.logspace(-5, -2, 12)


def _bank(optimizer: str = "adam") -> OptimizerBank:
    model = torch.nn.Linear(3, 2)
    return OptimizerBank(model.parameters, [optimizer], make_cfg().optim)


@functools.cache
def _yaml_actions(controller: str) -> dict:
    return OmegaConf.to_container(make_cfg(f"controller={controller}").controller.actions, enum_to_str=True)


def _actions(**kw):
    """An action space as the YAML of the controller using its kind sets it (dqn_lr, ppo_lr), with `kw` changed."""
    base = _yaml_actions("ppo_lr" if kw["kind"] == "lr_absolute" else "dqn_lr")
    return build_actions(OmegaConf.create({**base, **kw}))


def _lrs_after(actions, moves, bank=None) -> list[float]:
    bank = bank or _bank(actions.optimizer)
    actions.reset(bank)
    out = [bank.lr]
    for a in moves:
        actions.apply(a, bank)
        out.append(bank.lr)
    return out


def test_lr_grid_moves_one_point_and_clips_at_the_ends():
    lrs = _lrs_after(_actions(kind="lr_grid", start=7), [2, 2, 1, 0, 0, 0])
    np.testing.assert_allclose(lrs, GRID[[7, 8, 9, 9, 8, 7, 6]])
    assert _lrs_after(_actions(kind="lr_grid", start=0), [0, 0])[-1] == pytest.approx(1e-5)
    assert _lrs_after(_actions(kind="lr_grid", start=11), [2])[-1] == pytest.approx(1e-2)
    custom = _lrs_after(_actions(kind="lr_grid", n=4, low=1e-4, high=1e-1, start=1), [2, 2, 2])
    np.testing.assert_allclose(custom, [1e-3, 1e-2, 1e-1, 1e-1])


def test_lr_grid_index_jumps_to_any_point():
    actions = _actions(kind="lr_grid_index")
    assert actions.space.n == 12
    np.testing.assert_allclose(_lrs_after(actions, [0, 11, 3])[1:], GRID[[0, 11, 3]])


def test_lr_multiplicative_scales_by_factor_and_clips():
    lrs = _lrs_after(_actions(kind="lr_multiplicative", start=7), [2, 0, 1])
    np.testing.assert_allclose(lrs[1:], [GRID[7] * 1.1, GRID[7] * 1.1 * 0.9, GRID[7] * 1.1 * 0.9])
    top = _lrs_after(_actions(kind="lr_multiplicative", start=11, factor=0.5), [2, 0])
    np.testing.assert_allclose(top[1:], [1e-2, 5e-3])
    bottom = _lrs_after(_actions(kind="lr_multiplicative", start=0), [0])
    assert bottom[-1] == pytest.approx(1e-5)


def test_lr_absolute_maps_the_normalised_box_onto_log10_lr():
    actions = _actions(kind="lr_absolute")
    assert actions.space.shape == (1,) and actions.space.low[0] == -1 and actions.space.high[0] == 1
    lrs = _lrs_after(actions, [np.array([-1.0]), np.array([0.0]), np.array([1.0]), np.array([-7.0]), np.array([0.5])])
    np.testing.assert_allclose(lrs, [1e-3, 1e-6, 1e-3, 1.0, 1e-6, 10 ** -1.5])


def test_lr_moves_keep_the_optimizer_state():
    model = torch.nn.Linear(3, 1)
    bank = OptimizerBank(model.parameters, ["adam"], make_cfg().optim)
    actions = _actions(kind="lr_grid", start=5)
    actions.reset(bank)
    model(torch.ones(4, 3)).sum().backward()
    bank.current.step()
    moments = [s["exp_avg"].clone() for s in bank.current.state.values()]
    actions.apply(2, bank)
    assert all(g["lr"] == pytest.approx(GRID[6]) for g in bank.current.param_groups)
    assert all(torch.equal(m, s["exp_avg"]) for m, s in zip(moments, bank.current.state.values()))
    assert all(float(s["step"]) == 1 for s in bank.current.state.values())


@pytest.mark.parametrize("kw, key", [
    ({"kind": "lr_grid", "n": 1}, "controller.actions.n=1"),
    ({"kind": "lr_grid", "start": 12}, "controller.actions.start=12"),
    ({"kind": "lr_grid", "low": 1e-2, "high": 1e-3}, "controller.actions.low/high"),
    ({"kind": "lr_multiplicative", "factor": 1.1}, "controller.actions.factor=1.1"),
    ({"kind": "lr_absolute", "log_low": 0, "log_high": -6}, "controller.actions.log_low/log_high"),
    ({"kind": "lr_grid", "optimizer": "lion"}, "controller.actions.optimizer=lion"),
    ({"kind": "lr_cyclic"}, "controller.actions.kind=lr_cyclic"),
])
def test_bad_action_space_values_name_the_key(kw, key):
    with pytest.raises(UserError, match="^" + key.replace("(", r"\(")):
        _actions(**kw).check_optimizers(make_cfg().optim)  # the optimizer is checked against the bank's


def test_an_unknown_exploration_is_refused_at_composition(cli_inproc, tmp_path):
    result = cli_inproc("train", *POLY, "controller.exploration=cubic", "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 2 and "controller.exploration=cubic is not allowed" in result.stderr
    assert "linear" in result.stderr and "exponential" in result.stderr


@pytest.mark.parametrize("override, key", [
    ("controller.hyperparams.exploration_fraction=0", "controller.hyperparams.exploration_fraction=0"),
    ("controller.hyperparams.exploration_final_eps=0", "controller.hyperparams.exploration_final_eps=0"),
])
def test_bad_exploration_settings_name_the_key(tmp_path, override, key):
    with pytest.raises(UserError, match="^" + key):
        train(make_cfg(*POLY, override, "trainer.max_steps=2"), tmp_path)


def test_exponential_epsilon_decays_geometrically_to_its_floor():
    eps = ExponentialSchedule(0.9, 0.05, 0.5)
    assert eps(1.0) == pytest.approx(0.9)
    assert eps(0.75) == pytest.approx(math.sqrt(0.9 * 0.05))  # halfway through the decay span
    assert eps(0.5) == pytest.approx(0.05) and eps(0.0) == pytest.approx(0.05)


# -- schedules through the training loop ---------------------------------------------------------------

def _schedule_run(tmp_path, *overrides) -> pd.DataFrame:
    summary = train(make_cfg(*POLY, "controller=schedule", *overrides), tmp_path)
    assert summary["status"] == "completed"
    return pd.read_csv(tmp_path / "metrics.csv")


def test_onecycle_lr_rises_to_its_peak_then_falls(tmp_path):
    df = _schedule_run(tmp_path, "controller.schedule=onecycle", "controller.lr=0.01", "trainer.max_steps=40")
    lr = df["lr"].to_numpy()
    peak = int(np.argmax(lr))
    assert len(lr) == 40 and 5 < peak < 20  # pct_start 0.3 of 40 steps
    assert lr[0] == pytest.approx(0.01 / 25) and lr[peak] == pytest.approx(0.01, rel=0.02)
    assert (np.diff(lr[:peak + 1]) > 0).all() and (np.diff(lr[peak:]) < 0).all()
    assert lr[-1] < lr[0] / 100  # final_div_factor


def test_cosine_decreases_every_step_from_the_initial_lr(tmp_path):
    df = _schedule_run(tmp_path, "controller.schedule=cosine", "controller.optimizer=sgd", "controller.lr=0.05",
                       "trainer.max_steps=12")
    lr = df["lr"].to_numpy()
    assert lr[0] == pytest.approx(0.05) and (np.diff(lr) < 0).all() and lr[-1] < 0.05 * 0.02
    assert set(df["optimizer"]) == {"sgd"}


@pytest.mark.parametrize("schedule, params, expected", [
    ("constant", [], [1e-3] * 4),
    ("step", ["controller.step.step_size=2"], [1e-3, 1e-3, 1e-4, 1e-4]),
    ("exponential", ["controller.exponential.gamma=0.5"], [1e-3, 5e-4, 2.5e-4, 1.25e-4]),
])
def test_epoch_schedules_move_the_lr_at_epoch_ends(tmp_path, schedule, params, expected):
    # one decision per epoch; the lr column is the lr the epoch trained with
    df = _schedule_run(tmp_path, f"controller.schedule={schedule}", *params, "trainer.max_steps=null",
                       "trainer.epochs=4", "env.steps_per_action=null")
    np.testing.assert_allclose(df["lr"], expected)


def test_epoch_schedules_step_at_epoch_ends_even_with_finer_decisions(tmp_path):
    df = _schedule_run(tmp_path, "controller.schedule=step", "controller.step.step_size=1", "controller.step.gamma=0.5",
                       "trainer.max_steps=14", "env.steps_per_action=4")  # 6 steps per epoch
    # rows end at steps 4, 8, 12, 14; the lr halves after steps 6 and 12; each row shows its last step's lr
    np.testing.assert_allclose(df["lr"], [1e-3, 5e-4, 5e-4, 2.5e-4])


def test_onecycle_over_adadelta_runs_without_momentum(tmp_path):
    df = _schedule_run(tmp_path, "controller.schedule=onecycle", "controller.optimizer=adadelta", "controller.lr=1.0",
                       "trainer.max_steps=10")
    assert set(df["optimizer"]) == {"adadelta"} and df["lr"].max() == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("override, key", [
    ("controller.schedule=linear", "controller.schedule=linear"),
    ("controller.lr=0", "controller.lr=0"),
    ("controller.optimizer=lion", "controller.optimizer=lion"),
    ("controller.onecycle.pct_start=2", "controller.onecycle="),
])
def test_bad_schedule_values_fail_with_the_key(tmp_path, override, key):
    extra = ["controller.schedule=onecycle"] if key == "controller.onecycle=" else []
    with pytest.raises(UserError, match="^" + key):
        train(make_cfg(*POLY, "controller=schedule", *extra, override, "trainer.max_steps=4"), tmp_path)


# -- divergence ------------------------------------------------------------------------------------------

def test_divergence_ends_the_episode_with_a_penalty_and_status_diverged(tmp_path):
    summary = train(make_cfg(*POLY, "controller=schedule", "controller.optimizer=sgd", "controller.lr=1e6",
                             "trainer.max_steps=50"), tmp_path)
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert summary["status"] == "diverged" and json.loads((tmp_path / "summary.json").read_text())["status"] == "diverged"
    assert len(df) < 50 and df["diverged"].iloc[-1] and not df["diverged"].iloc[:-1].any()
    assert -2000 <= df["reward"].iloc[-1] <= -1000
    assert math.isfinite(summary["test_loss"])  # the best checkpoint is from before the blow-up


def test_an_agent_that_diverges_is_penalised_and_the_run_completes(tmp_path):
    # lr >= 1e5 on every action: the first step blows up; SB3 sees the penalty, the run still ends cleanly
    summary = train(make_cfg(*POLY, "controller=ppo_lr", "controller.actions.log_low=5", "controller.actions.log_high=6",
                             "env.features=[val_loss,d_loss,log10_lr]", "trainer.max_steps=20"), tmp_path)
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert summary["status"] == "diverged" and len(df) == 1 and df["diverged"].iloc[0]
    assert -2000 <= summary["total_reward"] <= -1000 and (tmp_path / "policy.zip").is_file()


# -- the agents, end to end --------------------------------------------------------------------------------

def test_dqn_lr_moves_the_lr_on_the_grid_at_the_baselines_budget(tmp_path, monkeypatch):
    from rlopt.controllers import sb3

    agents = []
    real_save = sb3.save_policy
    monkeypatch.setattr(sb3, "save_policy", lambda model, *a: (agents.append(model), real_save(model, *a)))
    summary = train(make_cfg(*POLY, "trainer.max_steps=150"), tmp_path / "dqn")
    base = train(make_cfg(*POLY, "controller=schedule", "trainer.max_steps=150"), tmp_path / "base")
    df = pd.read_csv(tmp_path / "dqn" / "metrics.csv")
    assert summary["status"] == "completed" and summary["controller"] == "dqn_lr"
    assert base["controller"] == "constant_adam_lr0.001"
    assert summary["opt_steps"] == base["opt_steps"] == 150 and summary["grad_evals"] == base["grad_evals"] == 150
    assert len(df) == 150 and list(df["opt_steps"]) == list(range(1, 151))  # steps_per_action=1
    on_grid = np.isclose(df["lr"].to_numpy()[:, None], GRID[None, :], rtol=1e-6).any(axis=1)
    assert on_grid.all() and df["lr"].nunique() > 1 and set(df["action"]) <= {0, 1, 2}
    assert set(summary["action_counts"]) <= {"down", "keep", "up"} and sum(summary["action_counts"].values()) == 150
    assert math.isfinite(summary["final_val_loss"])
    _, meta = load_policy(str(tmp_path / "dqn" / "policy.zip"))
    assert meta["features"] == ["val_loss", "d_loss"] and meta["actions"]["kind"] == "lr_grid"
    (agent,) = agents
    assert isinstance(agent.exploration_schedule, ExponentialSchedule) and agent.exploration_rate == pytest.approx(0.05)
    assert agent.tau == 0.005 and agent.batch_size == 64 and agent.learning_rate == 1e-3


def test_ppo_lr_sets_the_lr_it_chooses(tmp_path):
    summary = train(make_cfg(*POLY, "controller=ppo_lr", "reward=best_loss", "env.features=[val_loss,d_loss,log10_lr,epoch_frac]",
                             "trainer.max_steps=24", "env.steps_per_action=2"), tmp_path)
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert summary["status"] == "completed" and len(df) == 12
    expected = 10 ** (-6 + (np.clip(df["action"], -1, 1) + 1) / 2 * 6)
    np.testing.assert_allclose(df["lr"], expected, rtol=1e-5)
    assert df["lr"].nunique() == 12 and json.loads((tmp_path / "policy.json").read_text())["actions"]["kind"] == "lr_absolute"
    # best_loss = 10 * (best val loss before the step - val loss) + 1 * epochs left (6 steps per epoch)
    loss, epochs_left = df["val_loss"].to_numpy(), (24 - df["opt_steps"].to_numpy()) / 6
    initial = loss[0] + (df["reward"].iloc[0] - epochs_left[0]) / 10  # the loss before the first step
    best_before = np.minimum.accumulate(np.concatenate([[initial], loss[:-1]]))
    np.testing.assert_allclose(df["reward"], 10 * (best_before - loss) + epochs_left, rtol=1e-6, atol=1e-9)
    assert epochs_left[-1] == 0 and epochs_left[0] == pytest.approx(22 / 6)


def test_lr_env_observes_loss_and_its_change():
    env = make_env(make_cfg(*POLY, "trainer.max_steps=4"))
    obs0, _ = env.reset(seed=0)
    obs1, reward, *_ = env.step(1)
    assert obs1.shape == (2,) and obs1[0] == pytest.approx(env.val["loss"])
    assert obs1[1] == pytest.approx(obs1[0] - obs0[0], abs=1e-6)
    assert reward == pytest.approx(obs0[0] - obs1[0], abs=1e-6)  # loss_delta


@pytest.mark.parametrize("controller, extra", [("dqn_lr", []), ("ppo_lr", ["env.features=[val_loss,d_loss,log10_lr]"])])
def test_lr_env_passes_the_gymnasium_and_sb3_checkers(controller, extra):
    env = gymnasium.make("rlopt/LearningRate-v0", cfg=make_cfg(*POLY, f"controller={controller}", *extra,
                                                               "trainer.max_steps=30")).unwrapped
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=True)


def test_a_saved_lr_agent_evaluates_frozen(tmp_path):
    train(make_cfg(*POLY, "controller=ppo_lr", "env.features=[val_loss,d_loss,log10_lr]", "trainer.max_steps=16"),
          tmp_path / "run")
    policy = tmp_path / "run" / "policy.zip"
    cfg = make_cfg(*POLY, f"policy={policy}", "seed=5", "trainer.max_steps=8", config="evaluate")
    summary = evaluate(cfg, tmp_path / "eval")  # runs cfg with the controller and features of policy.json
    df = pd.read_csv(tmp_path / "eval" / "metrics.csv")
    assert summary["status"] == "completed" and summary["controller"] == "ppo_lr_frozen" and len(df) == 8
    model, meta = load_policy(str(policy))
    env = make_env(evaluation_config(cfg, meta))
    first_obs, _ = env.reset()  # the evaluated run's first observation (seed 5)
    action, _ = model.predict(first_obs, deterministic=True)
    assert df["lr"].iloc[0] == pytest.approx(env.actions.lr_of(action), rel=1e-5)


# -- presets ------------------------------------------------------------------------------------------------

def test_presets_compose_and_the_command_line_picks_the_controller():
    poly = make_cfg("experiment=lr_polynomial", tiny=False)
    assert (poly.controller.name, poly.dataset.name, poly.model.name, poly.reward.name) == \
           ("dqn_lr", "polynomial", "maclaurin", "loss_delta")
    assert poly.trainer.batch_size == 32 and poly.trainer.max_steps > 0 and list(poly.env.features) == ["val_loss", "d_loss"]
    baseline = make_cfg("experiment=lr_polynomial", "controller=schedule", tiny=False)
    assert baseline.controller.name == "constant_adam_lr0.001" and baseline.trainer.max_steps == poly.trainer.max_steps
    for name, dataset, model in [("lr_mnist", "mnist", "small_cnn"), ("lr_cifar100", "cifar100", "resnet18")]:
        agent = make_cfg(f"experiment={name}", tiny=False)
        grid = make_cfg(f"experiment={name}_schedules", tiny=False)
        assert (agent.controller.name, agent.dataset.name, agent.model.name, agent.reward.name) == \
               ("ppo_lr", dataset, model, "best_loss")
        assert grid.controller.type == "schedule" and grid.trainer.epochs == agent.trainer.epochs
        assert grid.env == agent.env and grid.reward == agent.reward


def test_ppo_lr_runs_with_the_default_features_seeing_its_previous_action():
    from rlopt.env import make_env

    env = make_env(make_cfg("controller=ppo_lr", "trainer.epochs=3"))
    obs, _ = env.reset(seed=0)
    assert env.observation_space.shape == (6,) and obs[-1] == 0.0  # 5 scalars + the previous action, none yet
    for action in (0.25, -0.5):
        obs, *_ = env.step(np.array([action], dtype=np.float32))
        assert obs[-1] == pytest.approx(action) and env.bank.lr == pytest.approx(10 ** (-6 + (action + 1) / 2 * 6))
