"""Experiment presets only set keys that exist: a misplaced key (one indented under the wrong block)
would otherwise be merged in silently and leave the setting it meant at its default."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import make_cfg
from rlopt.paths import conf_dir

PRESETS = sorted(p.stem for p in Path(conf_dir(), "experiment").glob("*.yaml"))


def _leaf_keys(node, prefix=""):
    if not OmegaConf.is_dict(node):
        return {prefix}
    keys = set()
    for key in node:
        keys |= _leaf_keys(node[key], f"{prefix}.{key}" if prefix else str(key))
    return keys or {prefix}


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_sets_only_keys_the_config_has(preset):
    raw = OmegaConf.load(Path(conf_dir(), "experiment", f"{preset}.yaml"))
    groups = [f"{next(iter(d)).removeprefix('override /')}={next(iter(d.values()))}" for d in raw.get("defaults", [])
              if OmegaConf.is_dict(d)]
    base = make_cfg(*groups, tiny=False)  # the same dataset/model/controller/reward, without the preset's values
    set_by_preset = _leaf_keys(OmegaConf.masked_copy(raw, [k for k in raw if k not in ("defaults", "hydra")]))
    unknown = {key for key in set_by_preset if OmegaConf.select(base, key, default="<missing>") == "<missing>"}
    assert not unknown, f"{preset} sets keys the config does not have: {sorted(unknown)}"
    # and each of them arrives: the preset wins over train.yaml and the groups' own values
    composed = make_cfg(f"experiment={preset}", tiny=False)
    values = set_by_preset - {""}  # "": a preset of defaults only (the *_schedules presets)
    got = {key: _plain(OmegaConf.select(composed, key)) for key in values}
    assert got == {key: _plain(OmegaConf.select(raw, key)) for key in values}


def _plain(value):
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
