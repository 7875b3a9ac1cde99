"""Layer-wise learning rates: layer param groups, the layer env and its SB3 VecEnv, the shared-policy
controller, the difference reward, and evaluating a policy on a network of another depth."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import gymnasium
import numpy as np
import pandas as pd
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from omegaconf import OmegaConf
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecCheckNan
from torch import nn

from conftest import make_cfg
from rlopt.config import validate_train
from rlopt.controllers.sb3 import _hyperparams, load_policy
from rlopt.controllers.sb3_env import LayerVecEnv
from rlopt.env import LAYERWISE_ENV_ID, LayerwiseTrainingEnv, make_env
from rlopt.errors import UserError
from rlopt.evaluate import evaluate
from rlopt.models import build_model
from rlopt.optim.layers import layer_groups
from rlopt.paths import conf_dir
from rlopt.train import train

ZOO = sorted(p.stem for p in Path(conf_dir(), "model").glob("*.yaml") if p.stem != "auto")
VECTOR_MODELS = {"maclaurin", "mlp"}
# Two decisions of one optimizer step each: 256 digits, batch 128, one epoch.
LAYERWISE = ["controller=ppo_layerwise", "env.steps_per_action=1", "trainer.epochs=1", "trainer.batch_size=128"]


@pytest.mark.parametrize("name", ZOO)
def test_layer_groups_cover_every_trainable_parameter_exactly_once(name):
    shape = (20,) if name in VECTOR_MODELS else (3, 32, 32)
    model = build_model(OmegaConf.load(Path(conf_dir(), "model", f"{name}.yaml")), "any", shape, 10)
    frozen = next(model.parameters())
    frozen.requires_grad_(False)
    grouped = [p for layer in layer_groups(model) for p in layer.params]
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(grouped) == len({id(p) for p in grouped}), "a parameter is in two layers"
    assert {id(p) for p in grouped} == {id(p) for p in trainable}
    assert id(frozen) not in {id(p) for p in grouped}


def test_batchnorm_joins_its_convolution_and_tied_weights_count_once():
    resnet = build_model(OmegaConf.create({"name": "resnet18"}), "cifar10", (3, 32, 32), 10)
    layers = {layer.name: layer for layer in layer_groups(resnet)}
    assert len(layers) == 21  # 20 convolutions (3 of them downsampling) + fc
    assert {id(p) for p in resnet.bn1.parameters()} <= {id(p) for p in layers["conv1"].params}
    assert {id(p) for p in resnet.layer2[0].downsample[1].parameters()} <= {id(p) for p in layers["layer2.0.downsample.0"].params}
    tied = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    tied[1].weight = tied[0].weight
    assert [len(layer.params) for layer in layer_groups(tied)] == [2, 1]


def test_layer_env_passes_gymnasium_checker():
    env = gymnasium.make(LAYERWISE_ENV_ID, cfg=make_cfg(*LAYERWISE)).unwrapped
    gym_check_env(env, skip_render_check=True)
    assert env.observation_space.shape == (4, 9) and list(env.action_space.nvec) == [3, 3, 3, 3]


def test_layer_vec_env_shapes_spaces_actions_and_auto_reset():
    cfg = make_cfg(*LAYERWISE, "reward=loss_delta")
    env = make_env(cfg)
    venv = LayerVecEnv(env)
    assert venv.num_envs == 4 and venv.observation_space.shape == (9,) and venv.action_space.n == 3
    venv.seed(5)
    obs = venv.reset()
    assert obs.shape == (4, 9) and obs.dtype == np.float32 and all(venv.observation_space.contains(o) for o in obs)
    same_seed = make_env(cfg, env.data, env.device).reset(seed=5)[0]
    np.testing.assert_array_equal(obs, same_seed)  # the seed reached the run
    names = env.features.names
    assert (obs[:, :4] == obs[0, :4]).all(), "global features differ between layers"
    np.testing.assert_allclose(obs[:, names.index("layer_depth")], [0, 1 / 3, 2 / 3, 1], atol=1e-6)
    np.testing.assert_allclose(obs[:, names.index("layer_log10_lr")], -3, atol=1e-6)
    first_layer = env.bank.current.param_groups[0]["params"]
    weight_norm = torch.linalg.vector_norm(torch.cat([p.detach().flatten() for p in first_layer])).item()
    assert obs[0, names.index("layer_log10_weight_norm")] == pytest.approx(math.log10(weight_norm), abs=1e-5)

    obs, rewards, dones, infos = venv.step(np.array([0, 1, 2, 2]))
    assert env.bank.lrs == pytest.approx([5e-4, 1e-3, 2e-3, 2e-3])
    assert rewards.shape == (4,) and rewards.dtype == np.float32 and (rewards == rewards[0]).all()
    assert dones.dtype == bool and not dones.any() and len(infos) == 4
    assert infos[0]["metrics"]["lr"] == pytest.approx(1.5e-3) and infos[0]["metrics"]["action"] == 1.25
    grads = obs[:, names.index("layer_log10_grad_norm")]
    assert (grads > -12).all(), "a layer reports no gradient after training"

    obs, rewards, dones, infos = venv.step(np.array([2, 2, 2, 2]))
    assert dones.all() and all(info["terminal_observation"].shape == (9,) for info in infos)
    assert infos[0]["terminal_observation"][names.index("epoch_frac")] == pytest.approx(1.0)
    assert obs[0, names.index("epoch_frac")] == 0.0 and env.bank.lrs == pytest.approx([1e-3] * 4), "no auto-reset"
    assert venv.get_attr("n_layers") == [4] * 4

    checked = VecCheckNan(venv, raise_exception=True)  # SB3's wrapper finds no NaN or inf in what the env returns
    assert checked.reset().shape == (4, 9)
    assert checked.step(np.array([1, 1, 1, 1]))[0].shape == (4, 9)


def test_sgd_base_optimizer_moves_each_layer_within_bounds():
    env = make_env(make_cfg(*LAYERWISE, "controller.actions.optimizer=sgd", "controller.actions.high=0.08"))
    env.reset(seed=0)
    assert env.bank.active == "sgd" and env.bank.lrs == pytest.approx([0.05] * 4)  # optim.sgd.lr
    env.step(np.array([2, 0, 1, 1]))
    assert env.bank.lrs == pytest.approx([0.08, 0.025, 0.05, 0.05])  # 0.1 clipped to high
    assert all("momentum_buffer" in state for state in env.bank.current.state.values())


def test_tiny_run_trains_records_every_layer_and_changes_the_policy(tmp_path):
    cfg = make_cfg(*LAYERWISE, "trainer.batch_size=32", "trainer.plots=true")  # 8 decisions: PPO updates after 4
    summary = train(cfg, tmp_path)
    assert summary["status"] == "completed" and summary["controller"] == "ppo_layerwise"
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    layers = pd.read_csv(tmp_path / "layer_lrs.csv")
    assert len(metrics) == 8 and len(layers) == 8 * 4 and list(layers["layer"][:4]) == [0, 1, 2, 3]
    per_step = layers.groupby("step")
    np.testing.assert_allclose(metrics["lr"], per_step["lr"].median().to_numpy())
    np.testing.assert_allclose(metrics["action"], per_step["action"].mean().to_numpy())
    np.testing.assert_allclose(per_step["agent_reward"].first().to_numpy(), metrics["reward"], rtol=1e-6)
    assert (tmp_path / "layer_lrs.png").stat().st_size > 1000

    trained, meta = load_policy(str(tmp_path / "policy.zip"))
    assert meta["actions"]["kind"] == "layer_lr" and meta["observation_dim"] == 9 and meta["steps_per_action"] == 1
    untrained = PPO("MlpPolicy", LayerVecEnv(make_env(cfg)), seed=0, device="cpu", **_hyperparams(cfg.controller))
    before = torch.cat([p.detach().flatten() for p in untrained.policy.parameters()])
    after = torch.cat([p.detach().flatten() for p in trained.policy.parameters()])
    assert before.shape == after.shape and not torch.equal(before, after), "the shared policy did not learn"


def test_per_layer_false_gives_one_global_lr_moved_by_the_same_policy(tmp_path):
    model = build_model(OmegaConf.create({"name": "digits_cnn"}), "digits", (1, 8, 8), 10)
    (whole,) = layer_groups(model, per_layer=False)
    assert [id(p) for p in whole.params] == [id(p) for p in model.parameters()]

    summary = train(make_cfg(*LAYERWISE, "trainer.batch_size=32", "controller.per_layer=false",
                             "controller.hyperparams.batch_size=4"), tmp_path)  # a rollout is 4 samples: one agent
    assert summary["status"] == "completed"
    layers = pd.read_csv(tmp_path / "layer_lrs.csv")
    assert len(layers) == 8 and (layers["name"] == "network").all() and (layers["depth"] == 0).all()
    lrs = np.concatenate([[1e-3], layers["lr"].to_numpy()])  # each row holds the lr after that step's move
    moved_by_a_factor = np.isin(np.round(lrs[1:] / lrs[:-1], 6), [0.5, 1.0, 2.0])
    assert (moved_by_a_factor | np.isclose(lrs[1:], 1e-5) | np.isclose(lrs[1:], 1e-2)).all(), lrs


def test_policy_trained_on_one_depth_evaluates_on_another(tmp_path):
    two_layers = make_cfg(*LAYERWISE, "model=mlp", "model.hidden=[16]", "controller.hyperparams.batch_size=8")
    train(two_layers, tmp_path / "run")
    cfg = make_cfg(f"policy={tmp_path / 'run' / 'policy.zip'}", "model=digits_cnn", "trainer.epochs=1",
                   "trainer.batch_size=128", config="evaluate")  # 4 layers; keeps the policy's interval of 1 step
    summary = evaluate(cfg, tmp_path / "eval")
    assert summary["status"] == "completed" and summary["model"] == "digits_cnn"
    layers = pd.read_csv(tmp_path / "eval" / "layer_lrs.csv")
    assert sorted(layers["layer"].unique()) == [0, 1, 2, 3] and layers["step"].max() == 2
    assert (layers["lr"] > 0).all()


def test_global_policy_is_refused_by_a_layerwise_run(tmp_path, trained_run):
    shutil.copytree(trained_run("ppo_2opt"), tmp_path / "run")  # shared: edit a copy
    meta_path = tmp_path / "run" / "policy.json"
    meta = json.loads(meta_path.read_text())
    layer_cfg = OmegaConf.load(Path(conf_dir(), "controller", "ppo_layerwise.yaml"))
    layer_env = OmegaConf.load(Path(conf_dir(), "env", "per_controller", "ppo_layerwise.yaml"))
    meta.update(actions=OmegaConf.to_container(layer_cfg.actions), features=list(layer_env.features), steps_per_action=2)
    meta_path.write_text(json.dumps(meta))
    cfg = make_cfg(f"policy={tmp_path / 'run' / 'policy.zip'}", config="evaluate")
    with pytest.raises(UserError, match="does not fit this environment"):
        evaluate(cfg, tmp_path / "eval")


def _rollout(difference: bool, actions):
    env = make_env(make_cfg(*LAYERWISE, "trainer.epochs=2", "reward=loss_delta",
                            f"controller.difference_reward={str(difference).lower()}"))
    env.reset(seed=3)
    return [env.step(np.array(a))[1:] for a in actions]


def test_difference_reward_pays_the_gain_over_all_keep_and_leaves_the_run_untouched():
    actions = [[1, 1, 1, 1], [2, 0, 2, 0], [0, 2, 2, 2], [2, 2, 2, 2]]
    plain, diff = _rollout(False, actions), _rollout(True, actions)
    for (reward, _, _, info), (paid, _, _, dinfo) in zip(plain, diff):
        row, drow = info["metrics"], dinfo["metrics"]
        assert drow["val_loss"] == row["val_loss"] and drow["reward"] == reward, "the counterfactual leaked into the run"
        assert paid == pytest.approx(reward - dinfo["default_reward"])
        assert drow["grad_evals"] == 2 * row["grad_evals"]
        assert dinfo["extra_time_s"] > 0 and info["extra_time_s"] == 0.0, "the counterfactual's time is reported apart"
    assert diff[0][0] == 0.0, "all-keep must earn exactly its own counterfactual"
    assert diff[1][0] != 0.0


@pytest.mark.parametrize("override, key", [
    ("controller.actions.factors=[0.5,-1.0]", "controller.actions.factors"),
    ("controller.actions.optimizer=sam", "controller.actions.optimizer=sam"),
    ("controller.actions.optimizer=sgd", "controller.actions.start_lr"),  # optim.sgd.lr=0.05 > high
    ("env.features=[val_loss,layer_norm]", "env.features"),
    ("env.steps_per_action=0", "env.steps_per_action=0"),
    ("controller.actions.factors=[0.5,2.0]", "controller.difference_reward"),
])
def test_bad_layerwise_settings_name_their_key(override, key):
    extra = ["controller.difference_reward=true"] if key == "controller.difference_reward" else []
    with pytest.raises(UserError, match=key.replace("[", r"\[")):
        cfg = make_cfg("controller=ppo_layerwise", override, *extra)
        validate_train(cfg)  # what every run checks first
        make_env(cfg)


@pytest.mark.parametrize("old, new", [("controller.features=[val_loss]", "env.features"),
                                      ("controller.steps_per_action=5", "env.steps_per_action")])
def test_the_old_spelling_of_a_layerwise_key_names_the_new_one(cli_inproc, tmp_path, old, new):
    result = cli_inproc("train", "+debug=tiny", "controller=ppo_layerwise", old, "hydra.run.dir=run", cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and f"is now {new}" in lines[0]
    assert not (tmp_path / "run").exists()


def test_layerwise_digits_preset_composes_for_the_agent_and_the_baseline():
    cfg = make_cfg("experiment=layerwise_digits", "trainer.progress=false", tiny=False)
    agent = make_env(cfg)
    assert isinstance(agent, LayerwiseTrainingEnv) and agent.n_layers == 4
    assert agent.steps_per_action == 20 and agent.decisions_per_episode == 18 and cfg.controller.episodes == 8
    baseline = make_env(make_cfg("experiment=layerwise_digits", "controller=adam", "trainer.progress=false", tiny=False))
    assert not isinstance(baseline, LayerwiseTrainingEnv) and baseline.decisions_per_episode == 18
    assert baseline.actions.optimizers == agent.actions.optimizers == ["adam"]


def test_an_older_runs_saved_config_with_the_old_spelling_is_refused():
    saved = OmegaConf.to_container(make_cfg("controller=ppo_layerwise"), enum_to_str=True)
    saved["controller"]["steps_per_action"] = 100  # as an older run's .hydra/config.yaml has it (resume=)
    cfg = OmegaConf.create(saved)
    with pytest.raises(UserError, match="^controller.steps_per_action is now env.steps_per_action"):
        validate_train(cfg)
