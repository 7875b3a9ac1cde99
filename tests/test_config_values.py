"""Each config value lives in one place: a key set in a YAML under conf/ has no default in its schema
(rlopt/schema.py), and no code in rlopt/ supplies a default of its own with `cfg.get(key, default)`."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from omegaconf import MISSING, OmegaConf

from conftest import REPO, make_cfg
from rlopt.config import options
from rlopt.paths import conf_dir
from rlopt.schema import SCHEMAS, EnvConfig, TrainConfig

CONF = Path(conf_dir())
SCHEMA_ENTRY = re.compile(r"^/?(schema(?:/[\w/]+)?)/(\w+)@(\w+)$")


def _schema(path: Path) -> list[tuple[type, str]]:
    """The (schema class, key it types) pairs a YAML composes in, following `- <sibling option>` entries."""
    found = []
    for entry in OmegaConf.load(path).get("defaults", []):
        if not isinstance(entry, str):
            continue
        match = SCHEMA_ENTRY.match(entry)
        if match:
            group, name, key = match.groups()
            found.append((SCHEMAS[group][name], "" if key == "_here_" else key))
        elif (path.parent / f"{entry}.yaml").is_file():
            found += _schema(path.parent / f"{entry}.yaml")
    if not found and path.read_text().startswith("# @package _global_"):
        found.append((TrainConfig, ""))
    if not found and path.parent.parent.name == "env":  # conf/env/per_controller/*.yaml: package env
        found.append((EnvConfig, ""))
    return found


def _defaulted_twice(node, schema: type, prefix: str) -> list[str]:
    """Keys of `node` (a YAML's mapping) whose schema field also has a default."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    twice = []
    for key, value in node.items():
        if key == "defaults" or key not in fields:
            continue
        field = fields[key]
        nested = field.default_factory if field.default_factory is not dataclasses.MISSING else None
        if nested is not None and dataclasses.is_dataclass(nested):
            if isinstance(value, dict):
                twice += _defaulted_twice(value, nested, f"{prefix}{key}.")
        elif field.default is not dataclasses.MISSING and field.default != MISSING:
            twice.append(f"{prefix}{key}")
    return twice


def _yaml_files() -> list[Path]:
    return sorted(p for p in CONF.rglob("*.yaml") if "hydra" not in p.relative_to(CONF).parts)


def test_every_yaml_has_a_schema():
    # conf/optim/: an optimizer node's arguments are its class's own, checked when the bank builds it (no dataclass
    # copies a package's signature); rlopt's own keys in it are typed by schema.OptimizerConfig (tests/test_sam_arms.py)
    untyped = [str(p.relative_to(CONF)) for p in _yaml_files() if not _schema(p) and p.parent.name != "optim"]
    assert untyped == []


def test_no_key_is_defaulted_in_both_the_schema_and_a_yaml():
    twice = []
    for path in _yaml_files():
        node = OmegaConf.to_container(OmegaConf.load(path))
        for schema, key in _schema(path):
            subtree = node.get(key) if key else node
            if isinstance(subtree, dict):
                twice += [f"{path.relative_to(CONF)}: {k}" for k in _defaulted_twice(subtree, schema, f"{key}." if key else "")]
    assert twice == [], "set in a YAML and defaulted in rlopt/schema.py too: " + "; ".join(twice)


def test_the_walk_finds_a_key_defaulted_twice():
    @dataclasses.dataclass
    class Inner:
        a: int = MISSING
        b: int = 3

    @dataclasses.dataclass
    class Outer:
        inner: Inner = dataclasses.field(default_factory=Inner)
        c: str = "x"

    assert _defaulted_twice({"inner": {"a": 1, "b": 3}, "c": "x"}, Outer, "") == ["inner.b", "c"]


def test_no_cfg_get_with_a_default_in_rlopt():
    calls = [f"{p.relative_to(REPO)}:{i}" for p in sorted((REPO / "rlopt").rglob("*.py"))
             for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"cfg[A-Za-z_.]*\.get\(", line)]
    assert calls == []


@pytest.mark.parametrize("controller, kind, family", [
    ("dqn_3opt", "optimizer", "OptimizerActions"), ("dqn_lr", "lr_grid", "GridActions"),
    ("ppo_lr", "lr_absolute", "AbsoluteActions"), ("ppo_layerwise", "layer_lr", "LayerActions"),
    ("cosine_adam", "optimizer", "OptimizerActions"),
])
def test_controller_actions_are_typed_per_kind(controller, kind, family):
    actions = make_cfg(f"controller={controller}").controller.actions
    assert OmegaConf.get_type(actions).__name__ == family
    assert actions.kind == kind


def test_the_layerwise_agent_reads_its_features_and_interval_from_env():
    cfg = make_cfg("controller=ppo_layerwise")
    assert "layer_depth" in cfg.env.features and cfg.env.steps_per_action == 100
    assert "features" not in cfg.controller and "steps_per_action" not in cfg.controller
    flat = make_cfg("controller=ppo_lr")
    assert "layer_depth" not in flat.env.features and flat.env.steps_per_action is None


@pytest.mark.parametrize("controller", options("controller"))
def test_every_controllers_actions_have_a_schema(controller):
    """A new controller YAML names its action family's schema (`- /schema/controller/actions/<family>@actions`)."""
    actions = make_cfg(f"controller={controller}").controller.actions
    assert OmegaConf.get_type(actions) in SCHEMAS["schema/controller/actions"].values()
