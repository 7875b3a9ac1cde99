"""Learning-rate-free (Prodigy, D-Adaptation) and schedule-free optimizers in the bank, and portfolio selection."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from conftest import call_cli, kill_at, make_cfg
from rlopt.controllers import build_controller
from rlopt.data import load_dataset
from rlopt.engine import Trainer
from rlopt.env import make_env
from rlopt.errors import UserError
from rlopt.evaluate import evaluate
from rlopt.optim import OptimizerBank
from rlopt.train import train
from test_faults import stop_then_resume
from test_reliability import _rows

MULTIPLIER_LR = ("prodigy", "dadapt_adam", "dadapt_sgd")
SCHEDULE_FREE = ("schedulefree_adamw", "schedulefree_sgd")
NEW = [*MULTIPLIER_LR, *SCHEDULE_FREE]
OPTIM = make_cfg().optim


def _bank(model, names, **overrides):
    cfg = OPTIM.copy()
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value)
    return OptimizerBank(lambda: model.parameters(), names, cfg)


def _steps(bank, model, n, seed=0):
    """`n` optimizer steps of the bank's current optimizer on a fixed regression problem."""
    gen = torch.Generator().manual_seed(seed)
    with bank.training():
        for _ in range(n):
            x = torch.randn(16, 4, generator=gen)
            bank.current.zero_grad()
            model(x).pow(2).mean().backward()
            bank.current.step()


@pytest.mark.parametrize("name", NEW)
def test_each_runs_as_a_fixed_controller_at_one_gradient_evaluation_per_step(tmp_path, name):
    summary = train(make_cfg(f"controller={name}", "trainer.max_steps=12", "env.steps_per_action=4"), tmp_path)
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert summary["status"] == "completed" and set(df["optimizer"]) == {name}
    assert list(df["grad_evals"]) == list(df["opt_steps"]) == [4, 8, 12]
    assert df["val_loss"].iloc[-1] < df["val_loss"].iloc[0]  # they learn at their defaults
    assert summary["test_acc"] is not None


def test_validation_test_and_best_checkpoint_use_the_schedule_free_average():
    env = make_env(make_cfg("controller=schedulefree_adamw", "trainer.epochs=2"))
    env.reset()
    _, _, _, _, info = env.step(0)
    tr, opt = env.trainer, env.bank.current
    assert not opt.param_groups[0]["train_mode"], "outside training the optimizer is in eval mode"
    x = [p.detach().clone() for p in tr.params]
    z = [opt.state[p]["z"] for p in tr.params]
    beta = opt.param_groups[0]["betas"][0]
    assert not all(torch.equal(a, b) for a, b in zip(x, z)), "x and z must differ for the test to mean anything"
    assert tr.evaluate(env.data.val)["loss"] == info["metrics"]["val_loss"]
    # the row's validation loss is at x, not at the training point y = beta x + (1 - beta) z
    with torch.no_grad():
        for p, zi in zip(tr.params, z):
            p.lerp_(zi, 1 - beta)
    at_y = tr.evaluate(env.data.val)["loss"]
    opt.param_groups[0]["train_mode"] = True  # the parameters now hold y: let the package map them back to x
    opt.eval()
    assert all(torch.allclose(p, xi, atol=1e-6) for p, xi in zip(tr.params, x))
    assert abs(at_y - info["metrics"]["val_loss"]) > 1e-6
    # the best-checkpoint copy (what the test split is evaluated on) is x too
    names = [n for n, p in tr.model.named_parameters()]
    assert env.best_epoch > 0 and all(torch.equal(env.best_state[n], xi) for n, xi in zip(names, x))


def test_batchnorm_statistics_are_recomputed_at_the_evaluation_weights():
    data = load_dataset(make_cfg().dataset, 0, torch.device("cpu"))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))
    bank = _bank(model, ["schedulefree_adamw"], **{"schedulefree_adamw.bn_batches": 3})
    tr = Trainer(model, data, bank, torch.device("cpu"), 32, 256, False, 0)
    tr.train(10)
    bn = model[2]
    assert tr.bn_stale
    tr.evaluate(data.val)
    # independently: the first Linear's outputs at x over the first 3 training batches, averaged
    with torch.no_grad():
        inputs = data.transform(data.train.x[:96], train=False).flatten(1)
        expected = model[1](inputs).mean(0)
    assert torch.allclose(bn.running_mean, expected, atol=1e-5)
    assert bn.momentum == 0.1 and not tr.bn_stale
    adam = Trainer(model, data, _bank(model, ["adam"]), torch.device("cpu"), 32, 256, False, 0)
    adam.train(2)
    assert not adam.bn_stale, "only a schedule-free optimizer's statistics are recomputed"


def test_switching_away_from_schedule_free_continues_from_x_and_keeps_its_state():
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    bank = _bank(model, ["schedulefree_sgd", "adam"], **{"schedulefree_sgd.lr": 0.1})
    sf = bank.current
    _steps(bank, model, 5)
    x = [p.detach().clone() for p in model.parameters()]
    z = [sf.state[p]["z"].clone() for p in model.parameters()]
    k, weight_sum = sf.param_groups[0]["k"], sf.param_groups[0]["weight_sum"]
    bank.select("adam")
    with bank.training():  # adam starts from x, the weights the run evaluated
        first = [p.detach().clone() for p in model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(first, x))
    _steps(bank, model, 3, seed=1)
    assert all(torch.equal(sf.state[p]["z"], zi) for p, zi in zip(model.parameters(), z)), "z is kept while adam steps"
    assert (sf.param_groups[0]["k"], sf.param_groups[0]["weight_sum"]) == (k, weight_sum)
    moved = [p.detach().clone() for p in model.parameters()]
    bank.select("schedulefree_sgd")
    beta = sf.param_groups[0]["momentum"]
    with bank.training():  # back on schedule-free: y = beta * (the weights adam left) + (1 - beta) * z
        assert all(torch.allclose(p, beta * m + (1 - beta) * zi, atol=1e-6) for p, m, zi in zip(model.parameters(), moved, z))
    _steps(bank, model, 1)
    assert sf.param_groups[0]["k"] == k + 1


@pytest.mark.parametrize("name", MULTIPLIER_LR)
def test_the_step_size_estimate_is_kept_across_switches(name):
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    bank = _bank(model, [name, "sgd"])
    _steps(bank, model, 5)
    d = bank.current.param_groups[0]["d"]
    assert d > OPTIM[name].d0, "d must have grown for the test to mean anything"
    bank.select("sgd")
    _steps(bank, model, 3)
    bank.select(name)
    assert bank.current.param_groups[0]["d"] == d
    _steps(bank, model, 1)
    assert bank.current.param_groups[0]["d"] >= d  # continues from it (d never decreases)


@pytest.mark.parametrize("name", NEW)
def test_state_round_trip_gives_the_same_next_steps(name):
    """What a checkpoint holds (model + bank state) continues exactly as the original does."""
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    bank = _bank(model, [name, "adam"])
    _steps(bank, model, 4)
    bank.select("adam")
    _steps(bank, model, 2)
    bank.select(name)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    state = bank.state_dict()
    twin = nn.Linear(4, 2)
    twin.load_state_dict(saved)
    twin_bank = _bank(twin, [name, "adam"])
    twin_bank.load_state_dict(torch.load(_save(state), weights_only=False))
    _steps(bank, model, 3, seed=2)
    _steps(twin_bank, twin, 3, seed=2)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters()))


def _save(state):
    import io
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return buf


def test_lr_moves_act_on_the_multiplier_and_leave_d_alone():
    env = make_env(make_cfg("controller=dqn_lr", "controller.actions.optimizer=prodigy", "controller.actions.low=0.1",
                            "controller.actions.high=10", "controller.actions.n=5", "controller.actions.start=2"))
    env.reset()
    assert env.bank.lr == 1.0  # grid point 2 of 0.1..10
    env.step(1)
    d = env.bank.current.param_groups[0]["d"]
    env.actions.apply(2, env.bank)  # one point up
    assert env.bank.lr == pytest.approx(10 ** 0.5) and env.bank.current.param_groups[0]["d"] == d


def test_lr_moves_on_a_schedule_free_optimizer_set_its_lr():
    env = make_env(make_cfg("controller=dqn_lr", "controller.actions.optimizer=schedulefree_adamw",
                            "controller.actions.kind=lr_multiplicative"))
    env.reset()
    before = env.bank.lr
    env.step(2)
    assert env.bank.lr == pytest.approx(before * 1.1)
    assert env.bank.current.param_groups[0]["lr_max"] == pytest.approx(before * 1.1), "the package saw the new lr"


def test_cosine_restarts_returns_to_the_initial_lr_after_each_period(tmp_path):
    train(make_cfg("controller=schedule", "controller.schedule=cosine_restarts", "controller.cosine_restarts.T_0=1",
                   "controller.cosine_restarts.T_mult=1", "env.steps_per_action=1", "trainer.epochs=2"), tmp_path)
    lr = pd.read_csv(tmp_path / "metrics.csv")["lr"]
    per_epoch = len(lr) // 2
    assert lr.iloc[0] == lr.iloc[per_epoch] == pytest.approx(1e-3)
    assert (lr.iloc[1:per_epoch].diff().dropna() < 0).all()


def test_portfolio_agents_see_a_one_hot_sized_by_the_list(tmp_path):
    for algo in ("ppo", "dqn"):
        cfg = make_cfg(f"controller={algo}_portfolio", "controller.actions.choices=[sgd,adam,dadapt_adam]")
        env = make_env(cfg)
        assert env.action_space.n == 3 and env.observation_space.shape == (5 + 3,)
    cfg = make_cfg("controller=ppo_portfolio")
    assert list(cfg.controller.actions.choices) == ["sgd", "adam", "prodigy", "schedulefree_adamw"]
    summary = train(cfg, tmp_path)
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert summary["status"] == "completed" and set(df["optimizer"]) <= set(cfg.controller.actions.choices)
    assert json.loads((tmp_path / "policy.json").read_text())["actions"]["choices"] == list(cfg.controller.actions.choices)
    with pytest.raises(UserError, match=r"portfolio=\['sgd', 'adam'\] does not match policy="):
        evaluate(make_cfg(f"policy={tmp_path / 'policy.zip'}", "portfolio=[sgd,adam]", config="evaluate"), tmp_path / "ev")


@pytest.mark.parametrize("overrides, message", [
    (["controller=ppo_portfolio", "controller.actions.choices=[sgd,nadam]"],
     "controller.actions.choices=['sgd', 'nadam'] is not allowed"),
    (["controller=dqn_portfolio", "controller.actions.choices=[adam]"], "is not allowed for an agent: list at least two"),
    (["controller=ppo_portfolio", "controller.actions.choices=[]"], "is not allowed for an agent: list at least two"),
    (["controller=schedule", "controller.optimizer=schedulefree_sgd", "controller.schedule=cosine"],
     "controller.schedule=cosine is not allowed with schedulefree_sgd"),
    (["controller=schedule", "controller.optimizer=dadapt_adam", "controller.schedule=cosine"],
     "controller.lr=0.001 is not allowed with dadapt_adam"),
    (["controller=dqn_lr", "controller.actions.optimizer=prodigy"],
     "controller.actions.low/high=(1e-05, 0.01) is not allowed with prodigy"),
    (["controller=ppo_lr", "controller.actions.optimizer=dadapt_sgd", "controller.actions.log_high=-1"],
     "controller.actions.log_low/log_high=(-6.0, -1.0) is not allowed with dadapt_sgd"),
    (["controller=prodigy", "optim.prodigy.d0=-1"], "optim.prodigy is not allowed: Prodigy refuses it"),
])
def test_bad_input_is_one_line_naming_the_key(tmp_path, overrides, message):
    cfg = make_cfg(*overrides)
    with pytest.raises(UserError) as err:
        controller = build_controller(cfg.controller, 0)
        env = make_env(cfg)
        env.reset()
        controller.start_episode(env)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
def test_bad_portfolio_on_the_command_line_exits_2(tmp_path):
    result = call_cli("train", "controller=ppo_portfolio", "controller.actions.choices=[sgd]", cwd=tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "at least two" in lines[0], result.stderr


STOP_AT = 3
MIXES = {"lr_free": "random controller.actions.choices=[adam,prodigy,schedulefree_adamw,dadapt_sgd]",
         "sam_arms": "random controller.actions.choices=[sgd,looksam,asam,gsam,sam_every_k]"}


def _resumed_equals_uninterrupted(folder) -> None:
    got, want = _rows(folder / "run" / "metrics.csv"), _rows(folder / "ref" / "metrics.csv")
    assert list(got["step"]) == list(range(1, 7))
    pd.testing.assert_frame_equal(got, want)
    assert json.loads((folder / "run" / "summary.json").read_text())["test_loss"] == \
        json.loads((folder / "ref" / "summary.json").read_text())["test_loss"]


def _args(controller: str) -> list[str]:
    name, *extra = controller.split()
    return [f"controller={name}", *extra, "+debug=tiny", "trainer.threads=1", "trainer.epochs=6"]


@pytest.mark.parametrize("controller", [*NEW, MIXES["sam_arms"]], ids=[*NEW, "sam_arms"])
def test_a_run_stopped_then_resumed_equals_the_uninterrupted_run(tmp_path, controller):
    """Prodigy's d, D-Adaptation's state and the schedule-free z and average go through checkpoint.pt and continue
    exactly; so do the SAM arms' when a random controller switches among them every epoch (LookSAM's direction
    and step count, sam_every_k's step count). Stopped in-process after a row past the last checkpoint, as a kill
    there leaves the folder; the kill -9 itself is the test below."""
    cfg = make_cfg(*_args(controller), tiny=False)
    train(cfg, tmp_path / "ref")
    stop_then_resume(cfg, tmp_path / "run", STOP_AT)
    _resumed_equals_uninterrupted(tmp_path)


@pytest.mark.slow
def test_sigkill_then_resume_equals_the_uninterrupted_run(tmp_path):
    """kill -9 while a random controller switches among the learning-rate-free and schedule-free optimizers every
    epoch: their state in checkpoint.pt, written by a process that then died, continues exactly."""
    args = _args(MIXES["lr_free"])
    assert call_cli("train", *args, "hydra.run.dir=ref", cwd=tmp_path).returncode == 0
    kill_at(f"row:{STOP_AT}", "train", *args, "hydra.run.dir=run", cwd=tmp_path)
    resumed = call_cli("train", "resume=run", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    _resumed_equals_uninterrupted(tmp_path)
