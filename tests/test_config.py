"""The typed config schemas: every option composes and builds, and a stray key or a wrong type is refused
at composition with one line naming the key (exit 2), before any rlopt code runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from conftest import make_cfg
from rlopt.config import instantiate_node, option, options
from rlopt.controllers import build_controller, controller_class
from rlopt.errors import UserError
from rlopt.models import build_model
from rlopt.paths import conf_dir
from rlopt.rewards import build_reward
from rlopt.schema import SCHEMAS

GROUPS = ["dataset", "model", "controller", "reward", "experiment", "debug"]
OPTIONS = [(group, name) for group in GROUPS for name in options(group)]
SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32),
          "cifar100": (3, 32, 32), "polynomial": (20,)}


def test_every_group_option_is_walked_here():
    on_disk = {(p.parent.name, p.stem) for p in Path(conf_dir()).glob("*/*.yaml") if p.parent.name in GROUPS}
    assert on_disk == set(OPTIONS) and len(OPTIONS) >= 30


@pytest.mark.parametrize("group, name", OPTIONS)
def test_every_option_composes_onto_its_schema(group, name):
    cfg = make_cfg(f"{'+' if group == 'debug' else ''}{group}={name}", tiny=False)
    node = cfg if group in ("experiment", "debug") else cfg[group]
    if group not in ("experiment", "debug"):
        assert OmegaConf.get_type(node).__name__.endswith("Config"), f"{group}={name} has no schema"
        assert OmegaConf.is_missing(node, "name") is False
        # `option` composes the group alone: the same node
        assert OmegaConf.to_container(option(group, name)) == OmegaConf.to_container(node)
    assert not OmegaConf.missing_keys(cfg), f"{group}={name} leaves keys unset: {OmegaConf.missing_keys(cfg)}"
    if group == "controller":
        assert type(build_controller(cfg.controller, 0)) is controller_class(cfg.controller.type)


@pytest.mark.parametrize("name", options("reward"))
def test_every_reward_builds(name):
    reward = build_reward(make_cfg(f"reward={name}", tiny=False).reward)
    assert callable(reward) and type(reward).__module__ == "rlopt.rewards"


@pytest.mark.parametrize("dataset", options("dataset"))
def test_every_dataset_names_a_model_option_that_builds_for_it(dataset):
    cfg = make_cfg(f"dataset={dataset}", tiny=False)
    assert cfg.dataset.default_model in options("model")
    net = build_model(cfg.model, dataset, SHAPES[dataset], 10)  # model=auto: the dataset's default_model
    assert sum(p.numel() for p in net.parameters()) > 0
    assert str(net) == str(build_model(option("model", cfg.dataset.default_model), dataset, SHAPES[dataset], 10))


def test_every_schema_is_used_by_some_yaml():
    entry = re.compile(r"^\s*- /?schema/([\w/]+)@\w+")
    used = {m.group(1) for p in Path(conf_dir()).rglob("*.yaml") for line in p.read_text().splitlines()
            if (m := entry.match(line))}
    declared = {f"{group}/{name}".removeprefix("schema/") for group, names in SCHEMAS.items() for name in names}
    assert declared == used


def test_the_layerwise_preset_sets_episodes_for_the_agent_only():
    assert make_cfg("experiment=layerwise_digits", tiny=False).controller.episodes == 8
    assert "episodes" not in make_cfg("experiment=layerwise_digits", "controller=adam", tiny=False).controller
    with pytest.raises(ConfigCompositionException):
        make_cfg("controller=adam", "controller.episodes=3", tiny=False)


def test_a_preset_setting_a_key_the_controller_lacks_is_one_line_naming_key_and_file(cli_inproc, tmp_path):
    preset = tmp_path / "extra" / "experiment" / "stray.yaml"
    preset.parent.mkdir(parents=True)
    preset.write_text("# @package _global_\ncontroller:\n  episodes: 3\n")
    search = f"hydra.searchpath=[file://{tmp_path / 'extra'}]"
    result = cli_inproc("train", "controller=sgd", "experiment=stray", search, "hydra.run.dir=run", cwd=tmp_path)
    lines = [text for text in result.stderr.splitlines() if text.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("rlopt train: error: controller.episodes:") and "experiment/stray.yaml" in lines[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override, line", [
    ("controller.episodes=3", "controller.episodes is not a known key"),  # a fixed baseline has no episodes
    ("trainer.epoch=3", "trainer.epoch is not a known key"),
    ("trainer.epochs=abc", "trainer.epochs=abc is not allowed"),
    ("dataset.val_size=1.5", "dataset.val_size=1.5 is not allowed"),
    ("trainer.device=tpu", "trainer.device=tpu is not allowed"),
    ("controller.action=first", "controller.action=first is not allowed"),
    ("controller=ppo_layerwise controller.per_layer=maybe", "controller.per_layer=maybe is not allowed"),
])
def test_stray_keys_and_wrong_types_are_one_line_and_exit_2(cli_inproc, tmp_path, override, line):
    result = cli_inproc("train", "controller=sgd", *override.split(), "hydra.run.dir=run", cwd=tmp_path)
    lines = [text for text in result.stderr.splitlines() if text.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"rlopt train: error: {line}"), lines[0]
    assert not (tmp_path / "run").exists()


def test_an_unbuildable_target_is_one_line_listing_the_options():
    node = OmegaConf.create({"name": "mine", "_target_": "rlopt.rewards.NoSuchReward"})
    with pytest.raises(UserError, match=r"reward=mine cannot be built .*; available: accuracy_delta, best_loss"):
        instantiate_node(node, "reward")
    with pytest.raises(UserError, match="model.name=transformer is unknown; available: auto, digits_cnn"):
        instantiate_node(OmegaConf.create({"name": "transformer"}), "model")
