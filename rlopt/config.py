"""What the typed schemas (`rlopt.schema`) cannot say, in one place.

- Value checks of a composed config: every bad value fails before any training starts, with one
  line naming the key and what is allowed (types and stray keys already failed at composition).
- `config_error_line`: a Hydra/OmegaConf composition error as that same one line.
- `option` / `instantiate_node`: one group option's config, and building a `_target_` node, with
  an unknown name or a failed build turned into one "available: ..." line.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from contextlib import nullcontext
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    OmegaConfBaseException,
)

from rlopt.errors import UserError
from rlopt.paths import conf_dir
from rlopt.schema import SCHEMAS

# Keys that moved: the old spelling is refused in one line naming the new key (on the command line,
# in a preset, or in an older run's saved config continued by `resume=`).
MOVED = {"controller.features": "env.features", "controller.steps_per_action": "env.steps_per_action"}

MAX_SEED = 2**32 - 1  # numpy's legacy seeding, which SB3's set_random_seed uses, takes no larger seed


def _positive_int(value, key: str, allow_null: bool = False) -> None:
    if value is None and allow_null:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        allowed = "null or a positive integer" if allow_null else "a positive integer"
        raise UserError(f"{key}={value} is not allowed: use {allowed}")


def _positive(value, key: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise UserError(f"{key}={value} is not allowed: it must be a number > 0")


def check_dataset(cfg) -> None:
    """`dataset.*` subset sizes (val_size is checked against the data when it is read: `rlopt.data`)."""
    _positive_int(cfg.train_subset, "dataset.train_subset", allow_null=True)
    _positive_int(cfg.test_subset, "dataset.test_subset", allow_null=True)


def check_optim(cfg) -> None:
    """`optim.*`: learning rates and SAM's rho > 0, SGD momentum in [0, 1)."""
    for name in ("sgd", "adam", "adadelta"):
        _positive(cfg[name].lr, f"optim.{name}.lr")
    _positive(cfg.sam.rho, "optim.sam.rho")
    momentum = cfg.sgd.momentum
    if not 0 <= momentum < 1:
        raise UserError(f"optim.sgd.momentum={momentum} is not allowed: use a value in [0, 1)")


def check_controller_optimizer(cfg) -> None:
    """`controller.optimizer` (the schedule baseline's) must be an optimizer of the bank: a node of `optim`."""
    if "optimizer" in cfg.controller and cfg.controller.optimizer not in cfg.optim:
        raise UserError(f"controller.optimizer={cfg.controller.optimizer} is not allowed: use one of {', '.join(cfg.optim)}")


def moved_key_line(full_key: str) -> str | None:
    """The refusal of a moved key's old spelling, or None for any other key."""
    if full_key in MOVED:
        return f"{full_key} is now {MOVED[full_key]} (every agent's observation and decision interval live under env.*)"
    return None


def validate_train(cfg) -> None:
    """Check the keys a training run depends on (dataset sizes against the data when it is read)."""
    for old in MOVED:
        group, key = old.split(".")
        if key in cfg[group]:
            raise UserError(moved_key_line(old))
    t = cfg.trainer
    _positive_int(t.epochs, "trainer.epochs")
    _positive_int(t.max_steps, "trainer.max_steps", allow_null=True)
    _positive_int(t.batch_size, "trainer.batch_size")
    _positive_int(t.eval_batch_size, "trainer.eval_batch_size")
    _positive_int(t.threads, "trainer.threads", allow_null=True)
    if t.amp not in ("auto", True, False):
        raise UserError(f"trainer.amp={t.amp} is not allowed: use auto, true or false")
    if not 0 <= cfg.seed <= MAX_SEED:
        raise UserError(f"seed={cfg.seed} is not allowed: use an integer from 0 to {MAX_SEED} (numpy's and SB3's range)")
    check_optim(cfg.optim)
    check_controller_optimizer(cfg)
    _positive_int(cfg.env.steps_per_action, "env.steps_per_action", allow_null=True)
    check_dataset(cfg.dataset)
    if cfg.env.divergence_penalty < 0:
        raise UserError(f"env.divergence_penalty={cfg.env.divergence_penalty} is not allowed: use a value >= 0")


def validate_evaluate(cfg) -> None:
    """`policy` given, and no `controller` on the command line but `controller.vectorize` (how `runs=K` seeds train):
    the policy brings its own controller (policy.json), so a `controller=...` there would be silently ignored."""
    if OmegaConf.is_missing(cfg, "policy"):
        raise UserError("policy is required: add policy=PATH, the policy.zip a `rlopt train` run wrote")
    given = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    for override in given:
        key = override.split("=", 1)[0].lstrip("+~")
        if key.split(".")[0].split("/")[0] == "controller" and key != "controller.vectorize":
            raise UserError(f"{override} is not allowed with policy={cfg.policy}: the policy brings its own controller "
                            "(see policy.json beside it); rlopt evaluate runs that one, frozen")


# controller.type -> whether `runs=K controller.vectorize=population` trains its K seeds as one population: each
# member's controller acts on its own run (its optimizer choice and lr batched), but nothing steps a torch lr
# scheduler per member, and an agent learning is its own loop (its learning runs batch with controller.n_envs=K)
POPULATION_CONTROLLERS = ("fixed", "random", "late_sam", "schedule")


def validate_runs(command: str, cfg) -> None:
    """`runs` a positive count (tune: 1, each trial is one run); with `controller.vectorize=population`, a controller
    whose seeds population mode can train as one model (an evaluated policy, a baseline), without an instance set."""
    runs = cfg.runs
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise UserError(f"runs={runs} is not allowed: use a positive integer (seeds seed..seed+runs-1, a run folder each)")
    if command == "tune":
        if runs != 1:
            raise UserError(f"runs={runs} is not allowed with rlopt tune: each trial is one run (the best config's "
                            "seeds: tune.final_seeds)")
        return
    with_set = cfg.instances.name != "none" or cfg.instances.file is not None
    if command == "train" and runs > 1 and with_set:
        raise UserError(f"runs={runs} is not allowed with instances={cfg.instances.name}: one run per instance "
                        "(instance=all runs each); for more seeds use -m seed=...")
    if runs == 1 or str(cfg.controller.vectorize) != "population":
        return
    if with_set:
        raise UserError(f"controller.vectorize=population is not allowed with runs={runs} and instances="
                        f"{cfg.instances.name}: population mode trains the seeds of one task; use "
                        "controller.vectorize=processes")
    if command == "evaluate":
        return  # the policy's own controller, frozen: batched
    kind = cfg.controller.type
    if kind not in POPULATION_CONTROLLERS:
        raise UserError(f"controller={cfg.controller.name} is not allowed with runs={runs} controller.vectorize="
                        "population: population mode trains the seeds of fixed baselines (sgd, sam, adam, random, "
                        "late_sam, schedule with a constant lr) and frozen policies; an agent's learning runs batch "
                        "with controller.n_envs=K; use controller.vectorize=processes")
    if kind == "schedule" and cfg.controller.schedule != "constant":
        raise UserError(f"controller.schedule={cfg.controller.schedule} is not allowed with runs={runs} "
                        "controller.vectorize=population: population mode steps no per-member lr scheduler; use "
                        "controller.schedule=constant, or controller.vectorize=processes")


def check_values(command: str, cfg) -> None:
    """The value checks of `command`'s composed config, all of which need nothing heavy imported (the CLI runs them
    before it imports torch). A resumed run's saved config is checked when it is loaded, not this one."""
    if command == "report":
        validate_report(cfg)
        return
    if command == "evaluate":
        validate_evaluate(cfg)
    validate_runs(command, cfg)
    if not cfg.resume:
        validate_train(cfg)


def validate_report(cfg) -> None:
    """At least one folder to report (or a runs.csv), and `report.bootstrap.*`: at least one resample, a non-negative seed."""
    if not cfg.dirs and not cfg.sweep and not cfg.runs_csv:
        raise UserError("give at least one run or sweep folder (rlopt report DIR... or sweep=DIR), or runs_csv=FILE")
    _positive_int(cfg.report.bootstrap.reps, "report.bootstrap.reps")
    if cfg.report.bootstrap.seed < 0:
        raise UserError(f"report.bootstrap.seed={cfg.report.bootstrap.seed} is not allowed: use a non-negative integer")


def schema_keys(node_type) -> list[str]:
    """The keys a schema dataclass allows (Hydra's own `_target_`-style keys left out)."""
    return [f.name for f in dataclasses.fields(node_type) if not f.name.startswith("_")]


def config_error_line(err: Exception, command: str | None = None) -> str:
    """A composition error (stray key, wrong type, unknown option, bad override) as one line naming the key
    and what is allowed there. `command`: the rlopt command whose config was composed (train, evaluate, report)."""
    cause = err.__cause__
    if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):  # from a command-line override
        reason = str(cause.msg).splitlines()[0]
        if isinstance(cause, (ConfigAttributeError, ConfigKeyError)):
            if moved_key_line(cause.full_key):
                return moved_key_line(cause.full_key)
            parent = cause.full_key.rpartition(".")[0]
            if dataclasses.is_dataclass(cause.object_type):
                allowed = ", ".join(schema_keys(cause.object_type))
                return f"{cause.full_key} is not a known key; {parent or 'the config'} has: {allowed}"
            return f"{cause.full_key} is not a known key ({reason})"
        return f"{cause.full_key}={cause.value} is not allowed: {reason}"
    text = str(err).split("Config search path")[0]
    missing = re.search(r"Could not find '([^']+)/([^'/]+)'\s*Available options in '[^']+':(.*)", text, re.DOTALL)
    if missing:  # group=option naming no file of the group
        group, name, available = missing.groups()
        return f"{group}={name} is unknown; available: {', '.join(available.split())}"
    no_group = re.match(r"Could not override '([^']+)'\. No match in the defaults list", text)
    if no_group and command in SCHEMAS["schema"]:  # group=option where the command's config has no such group
        allowed = ", ".join(schema_keys(SCHEMAS["schema"][command]))
        return f"{no_group.group(1)} is not a key of rlopt {command}; it has: {allowed}"
    full_key = re.search(r"full_key: (\S+)", text)
    source = re.match(r"In '([^']+)': \w+ raised while composing config:\n(.*)", text)
    if full_key and moved_key_line(full_key.group(1)):
        return moved_key_line(full_key.group(1))
    if full_key and source:  # from a config file (a preset setting a key the schema lacks, a value of the wrong type)
        return f"{full_key.group(1)}: {source.group(2).strip()} (set in {source.group(1)}.yaml)"
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def options(group: str) -> list[str]:
    """The options of a config group: its YAML files in conf/."""
    return sorted(p.stem for p in Path(conf_dir(), group).glob("*.yaml"))


@functools.cache
def option(group: str, name: str) -> DictConfig:
    """The composed config of one option of a group (`option("model", "small_cnn")`), as `group=name` gives it.

    Composed on its own (`+group=name` onto no primary config): the node `train.yaml` with `group=name` gives
    (tests/test_config.py), in a third of the time composing all of train.yaml takes (~50 against ~140 ms; a
    run with `model=auto` looks up two options before it starts)."""
    if name not in options(group):
        raise UserError(f"{group}.name={name} is unknown; available: {', '.join(options(group))}")
    initialized = GlobalHydra.instance().is_initialized()
    with nullcontext() if initialized else initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        return compose(config_name=None, overrides=[f"+{group}={name}"])[group]


def instantiate_node(cfg, group: str):
    """Build the `_target_` of a group's config (its `name` only labels it); a failure is one line naming the group.

    A node without `_target_` (an older run's saved config, a shorthand `{name: ...}`) is the
    option `name` with the node's other keys on top.
    """
    if "_target_" not in cfg:
        cfg = OmegaConf.merge(option(group, cfg.name), {k: v for k, v in cfg.items() if k != "defaults"})
    spec = OmegaConf.to_container(cfg, resolve=True)
    name = spec.pop("name", None)
    try:
        return instantiate(spec)
    except (InstantiationException, HydraException) as err:
        reason = str(err).splitlines()[0]
        raise UserError(f"{group}={name} cannot be built ({reason}); available: {', '.join(options(group))}") from None
