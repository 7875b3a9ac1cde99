"""The wheel: a non-editable install must carry the whole package and the Hydra config tree.

Builds the wheel with hatchling's builder API (the project's build backend; offline, well under
a second) rather than through pip, then installs it the way pip installs a pure-Python wheel
(unpacked into a folder on the path) and composes every config from outside the checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow
wheel_builder = pytest.importorskip(
    "hatchling.builders.wheel", reason="hatchling (the build backend) is part of the test extra: pip install -e '.[test]'")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = list(wheel_builder.WheelBuilder(str(REPO)).build(directory=str(out), versions=["standard"]))
    assert len(built) == 1
    return Path(built[0])


def test_wheel_ships_every_module_and_every_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {f"rlopt/conf/{p.relative_to(REPO / 'conf').as_posix()}" for p in (REPO / "conf").rglob("*.yaml")}
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "rlopt").rglob("*.py")}
    assert "rlopt/conf/train.yaml" in configs and "rlopt/data/sources.py" in modules
    for group in ("dataset", "model", "controller", "reward"):
        assert any(name.startswith(f"rlopt/conf/{group}/") for name in configs), group
    assert configs - names == set(), "configs missing from the wheel"
    assert modules - names == set(), "modules missing from the wheel"
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "rlopt = rlopt.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


# Run by the installed copy: compose `train` with every option of every config group from the
# config tree that conf_dir() finds, and report where rlopt and that tree were found.
COMPOSE_EVERY_OPTION = """
import sys
from pathlib import Path
from hydra import compose, initialize_config_dir
import rlopt
from rlopt.paths import conf_dir
conf = Path(conf_dir())
with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
    for group in sorted(p for p in conf.iterdir() if p.is_dir()):
        for option in sorted(group.glob("*.yaml")):
            add = "+" if group.name == "debug" else ""  # not in train.yaml's defaults: added with +debug=tiny
            cfg = compose(config_name="train", overrides=[f"{add}{group.name}={option.stem}"])
            # experiment and debug presets are global (no node of their own); other options are named by
            # their file's stem, unless the name is built from their settings (schedule: "${...}")
            if group.name == "optim":  # the bank: one node per optimizer, keyed by its name
                assert option.stem in cfg.optim, option.stem
            elif group.name not in ("experiment", "debug"):
                named = "${" in option.read_text().split("name:", 1)[-1].splitlines()[0]
                assert named or cfg[group.name].name == option.stem, (group.name, option.stem)
            print("composed", group.name, option.stem)
print("rlopt", rlopt.__file__)
print("conf", conf)
"""


def test_installed_wheel_composes_every_config_outside_the_checkout(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # what pip does with a pure-Python wheel, minus the metadata
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run([sys.executable, "-c", COMPOSE_EVERY_OPTION], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = dict(line.split(" ", 1) for line in run.stdout.splitlines() if not line.startswith("composed"))
    assert Path(lines["rlopt"]).is_relative_to(site) and Path(lines["conf"]) == site / "rlopt" / "conf"
    composed = {tuple(line.split()[1:]) for line in run.stdout.splitlines() if line.startswith("composed")}
    in_checkout = {(p.parent.name, p.stem) for p in (REPO / "conf").glob("*/*.yaml")}
    assert composed == in_checkout and ("dataset", "cifar10") in composed
