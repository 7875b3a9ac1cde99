"""Instance sets: what an `instances=<set>` config names, read into train and test instances and checked.

An instance is one task (what is trained, as DACBench's instances and learned_optimization's task
families are): a partial run config over the keys that describe the task and nothing else,

    {id: p2, dataset: {name: polynomial, degree: 2, noise: 0.1}, model: {name: maclaurin, hidden: [64, 32]},
     trainer: {batch_size: 16, max_steps: 600}, optim: {adam: {lr: 3.0e-3}}}

`dataset.name` / `model.name` pick that group's option (as `dataset=polynomial` would, keeping what the
command changed in the option it replaces, such as `+debug=tiny`'s subset sizes), the other keys override
it. The controller, reward and seed stay the command's: the same method runs on every instance.

A set holds instances from three sources, merged: the explicit `train` / `test` lists, a seeded
generator (`generate`: ranges and choices, a count and a seed, as CARL samples contexts) and a
DACBench SGD instance-set CSV (`file`, see `rlopt.instances.dacbench`). Generated and file instances
are split by `holdout`: `holdout.test` of them, drawn with `holdout.seed`, form the test part.

Checked here, each failure one line naming the key: ids unique; the two parts never share an id nor a
task (the same settings under another id); every key one an instance may set and one the config
has (by applying it). `InstanceSet.draw(run_seed)` is the train instance of a learning run: a function
of the run seed, so the same seeds draw the same tasks.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from rlopt.config import option, options
from rlopt.errors import UserError

PARTS = ("train", "test")
# what an instance may set: the task, never how it is controlled (controller, reward, env, seed)
SECTIONS = ("dataset", "model", "trainer", "optim")
TRAINER_KEYS = ("batch_size", "epochs", "max_steps")  # the task's batch size and budget; the rest is how it runs
GROUPS = ("dataset", "model")  # sections whose `name` picks a config option
# dataset keys that change the data's size or draw but not its shapes: instances differing only in these can share
# one architecture (a population batches them); any other difference keeps them apart
SHAPE_FREE = {"train_subset", "val_size", "test_subset", "test_size", "split_seed", "noise", "coef_scale", "augment",
              "root", "download", "n_polynomials"}


@dataclass(frozen=True)
class Instance:
    id: str
    part: str  # train | test
    settings: dict = field(hash=False)  # nested: section -> key -> value (see the module docstring)
    source: str = ""  # where it was defined, for error lines: instances.train[2], instances.generate[5], row 7

    @property
    def task(self) -> str:
        """The instance's settings as canonical text: two instances with equal `task` train the same task."""
        return json.dumps(self.settings, sort_keys=True)


@dataclass
class InstanceSet:
    name: str
    train: list[Instance]
    test: list[Instance]

    @property
    def all(self) -> list[Instance]:
        return [*self.train, *self.test]

    def get(self, instance_id: str) -> Instance:
        for inst in self.all:
            if inst.id == instance_id:
                return inst
        ids = {part: ", ".join(i.id for i in getattr(self, part)) or "none" for part in PARTS}
        raise UserError(f"instance={instance_id} is not in instances={self.name}; its ids: train {ids['train']}; "
                        f"test {ids['test']} (or instance=all)")

    def draw(self, run_seed: int, among: list[Instance] | None = None) -> Instance:
        """The train instance a learning run with seed `run_seed` trains on (uniform, seeded by the run seed), from
        `among` (one of `groups`, for a population whose members share an architecture) or the whole train part."""
        pool = self.train if among is None else among
        if not pool:
            raise UserError(f"instances={self.name} has no train instances to learn on")
        return pool[int(np.random.default_rng([int(run_seed), 24]).integers(len(pool)))]

    def groups(self, cfg: DictConfig, part: str = "train") -> dict[str, list[Instance]]:
        """`part`'s instances grouped by architecture (see `architecture`): the members of one population
        (`controller.vectorize=population`) must come from one group."""
        grouped: dict[str, list[Instance]] = {}
        for inst in getattr(self, part):
            grouped.setdefault(architecture(apply(cfg, inst)), []).append(inst)
        return grouped

    def population_pools(self, cfg: DictConfig, n_envs: int) -> list[list[Instance]]:
        """Per member of a population of `n_envs` learning across the train part (`controller.vectorize=population`),
        the instances it draws among: member k those of architecture group k mod G (`groups`, in the order their
        first instance is listed), so each group is one population of every G-th member. Refused in one line
        when there are fewer members than groups."""
        groups = list(self.groups(cfg).values())
        if n_envs < len(groups):
            raise UserError(f"controller.n_envs={n_envs} is not allowed with controller.vectorize=population and "
                            f"instances={self.name}: its train instances span {len(groups)} architectures (one "
                            f"population each, member k in group k mod {len(groups)}); use controller.n_envs >= "
                            f"{len(groups)}")
        return [groups[k % len(groups)] for k in range(n_envs)]


def architecture(cfg: DictConfig) -> str:
    """What fixes a run's model shapes: the model node, the dataset's name and its shape-setting keys."""
    dataset = {k: v for k, v in OmegaConf.to_container(cfg.dataset, resolve=True).items() if k not in SHAPE_FREE}
    return json.dumps({"model": OmegaConf.to_container(cfg.model, resolve=True), "dataset": dataset}, sort_keys=True)


def apply(cfg: DictConfig, inst: Instance) -> DictConfig:
    """The run config of `inst`: `cfg` with the instance's options picked and keys set, and `instance` = its id."""
    run = copy.deepcopy(cfg)
    rest = {}
    for section, values in inst.settings.items():
        values = dict(values)
        name = values.pop("name", None) if section in GROUPS else None
        if name is not None and name != run[section].name:
            with open_dict(run):
                run[section] = _switched(run[section], section, str(name))
        if values:
            rest[section] = values
    try:
        run = OmegaConf.merge(run, rest)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        raise UserError(f"{inst.source} (id {inst.id}): {key} cannot be set ({str(err).splitlines()[0]})") from None
    with open_dict(run):
        run.instance = inst.id
    return run


def _switched(node: DictConfig, section: str, name: str) -> DictConfig:
    """Option `name` of `section`, keeping what the command changed in the option it replaces (keys that option
    also has, set to other values than its defaults: `+debug=tiny`'s subset sizes, a `dataset.test_subset=`)."""
    fresh = copy.deepcopy(option(section, name))
    if str(node.name) not in options(section):
        return fresh
    before = OmegaConf.to_container(option(section, str(node.name)), resolve=False)
    changed = {k: v for k, v in OmegaConf.to_container(node, resolve=False).items()
               if k in fresh and k not in ("name", "default_model", "_target_") and v != before.get(k)}
    return OmegaConf.merge(fresh, changed) if changed else fresh


def _check_settings(settings, source: str) -> dict:
    if not isinstance(settings, dict):
        raise UserError(f"{source} is not allowed: give a mapping of {', '.join(SECTIONS)}")
    for section, values in settings.items():
        if section not in SECTIONS:
            raise UserError(f"{source}.{section} is not allowed: an instance sets id, {', '.join(SECTIONS)} "
                            "(the controller, reward and seed are the command's)")
        if not isinstance(values, dict):
            raise UserError(f"{source}.{section}={values} is not allowed: give a mapping of its keys")
        if section == "trainer":
            for key in values:
                if key not in TRAINER_KEYS:
                    raise UserError(f"{source}.trainer.{key} is not allowed: an instance sets only "
                                    f"trainer.{', trainer.'.join(TRAINER_KEYS)}")
    return settings


def _explicit(entries, part: str) -> list[Instance]:
    found = []
    for i, entry in enumerate(entries):
        source = f"instances.{part}[{i}]"
        entry = OmegaConf.to_container(entry, resolve=True) if OmegaConf.is_config(entry) else entry
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), (str, int)) or isinstance(entry.get("id"), bool):
            raise UserError(f"{source} is not allowed: an instance is a mapping with an `id` (text) and its settings")
        settings = {k: v for k, v in entry.items() if k != "id"}
        found.append(Instance(str(entry["id"]), part, _check_settings(settings, source), source))
    return found


def _is_dimension(spec) -> bool:
    return isinstance(spec, dict) and bool(spec) and (set(spec) == {"choices"} or set(spec) <= {"low", "high", "log", "int"})


def _draw(spec, key: str, rng: np.random.Generator):
    """One value of a generator dimension: {choices: [...]} or {low, high, log, int}; a mapping of further keys is
    drawn key by key (in key order); anything else is a constant."""
    if isinstance(spec, dict) and not _is_dimension(spec):
        return {k: _draw(spec[k], f"{key}.{k}", rng) for k in sorted(spec)}
    if not isinstance(spec, dict):
        return spec
    if set(spec) == {"choices"} and isinstance(spec["choices"], list) and spec["choices"]:
        return spec["choices"][int(rng.integers(len(spec["choices"])))]
    if {"low", "high"} <= set(spec):
        low, high, log, integer = spec["low"], spec["high"], bool(spec.get("log", False)), bool(spec.get("int", False))
        if not (isinstance(low, (int, float)) and isinstance(high, (int, float)) and low <= high and (not log or low > 0)):
            raise UserError(f"{key}={spec} is not allowed: low <= high (> 0 with log: true)")
        x = float(np.exp(rng.uniform(np.log(low), np.log(high)))) if log else float(rng.uniform(low, high))
        return int(round(x)) if integer else x
    raise UserError(f"{key}={spec} is not allowed: give a value, {{choices: [...]}} or {{low, high, log, int}}")


def _generate(gen, prefix: str = "g") -> list[Instance]:
    """`gen.count` distinct instances drawn from `gen.space` with `gen.seed` (dimensions in key order)."""
    count, space = gen.count, OmegaConf.to_container(gen.space, resolve=True)
    if isinstance(count, bool) or count < 1:
        raise UserError(f"instances.generate.count={count} is not allowed: use a positive integer")
    if not space:
        raise UserError("instances.generate.space is empty: give at least one config key to draw")
    rng = np.random.default_rng(int(gen.seed))
    found, tasks = [], set()
    for _ in range(100 * count):
        settings = _draw(space, "instances.generate.space", rng)
        inst = Instance(f"{prefix}{len(found):02d}", "train", settings, f"instances.generate[{len(found)}]")
        if inst.task not in tasks:
            tasks.add(inst.task)
            found.append(inst)
            if len(found) == count:
                return [Instance(i.id, i.part, _check_settings(i.settings, "instances.generate.space"), i.source)
                        for i in found]
    raise UserError(f"instances.generate.count={count} is not allowed: the space holds only {len(found)} distinct instances")


def _holdout(pool: list[Instance], holdout) -> tuple[list[Instance], list[Instance]]:
    """(train, test) of the generated/file instances: `holdout.test` of them, drawn with `holdout.seed`, are test."""
    n_test = holdout.test
    if isinstance(n_test, bool) or not 0 <= n_test <= len(pool):
        raise UserError(f"instances.holdout.test={n_test} is not allowed: use 0..{len(pool)} "
                        f"(the generated and file instances: {len(pool)})")
    test_idx = set(np.random.default_rng(int(holdout.seed)).permutation(len(pool))[:n_test].tolist())
    train = [Instance(p.id, "train", p.settings, p.source) for i, p in enumerate(pool) if i not in test_idx]
    test = [Instance(p.id, "test", p.settings, p.source) for i, p in enumerate(pool) if i in test_idx]
    return train, test


def check_split(train: list[Instance], test: list[Instance]) -> None:
    """Ids unique over both parts; no task in both parts (a test instance the agent also learned on leaks)."""
    seen: dict[str, Instance] = {}
    for inst in [*train, *test]:
        if inst.id in seen:
            raise UserError(f"instances: id {inst.id} is used twice ({seen[inst.id].source} and {inst.source}); "
                            "ids must be unique")
        seen[inst.id] = inst
    train_tasks = {inst.task: inst for inst in train}
    for inst in test:
        if inst.task in train_tasks:
            twin = train_tasks[inst.task]
            raise UserError(f"instances: test instance {inst.id} ({inst.source}) is the task of train instance {twin.id} "
                            f"({twin.source}); the train and test parts must not overlap")


def load_set(cfg: DictConfig, check: bool = True) -> InstanceSet | None:
    """The instance set `cfg.instances` names (None for `instances=none` without a file). `check`: apply every
    instance to `cfg` once, so a key the config lacks fails here, before any run starts, and list the file's
    rows that cannot run here; without it, only the ids and parts are wanted."""
    spec = cfg.instances
    train, test = _explicit(spec.train, "train"), _explicit(spec.test, "test")
    pool = _generate(spec.generate) if spec.generate is not None else []
    if spec.file is not None:
        from rlopt.instances.dacbench import read_instances

        pool += read_instances(str(spec.file), cfg, quiet=not check)
    if not (train or test or pool):
        if spec.name != "none":
            raise UserError(f"instances={spec.name} holds no instances: give train/test lists, generate or file")
        return None
    held_train, held_test = _holdout(pool, spec.holdout)
    train, test = [*train, *held_train], [*test, *held_test]
    check_split(train, test)
    name = Path(str(spec.file)).stem if spec.file is not None and spec.name == "none" else str(spec.name)
    instances = InstanceSet(name, train, test)
    for inst in instances.all if check else []:
        apply(cfg, inst)
    return instances
