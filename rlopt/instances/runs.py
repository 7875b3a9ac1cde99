"""Running a command over the instances of a set: one run folder per instance and seed.

`rlopt train instances=<set> instance=all` runs the command's controller on every instance (train and
test part), `rlopt evaluate policy=... instances=<set>` runs the frozen policy on every test instance,
`runs` seeds each. Each run goes into `<command folder>/<instance id>_s<seed>/` with its own config (the
instance applied, `instance` = its id), so `rlopt report <command folder>` finds them as ordinary runs and
groups them by instance. They run one after another in this process; a folder whose run already finished
is left as it is (so rerunning the command continues an interrupted fan-out), and one run's failure is
recorded in its folder while the others still run.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from rlopt.errors import RunsFailed, UserError
from rlopt.instances.spec import Instance, InstanceSet, apply, load_set

log = logging.getLogger(__name__)


def jobs(cfg: DictConfig, instances: list[Instance], seeds: list[int]) -> list[tuple[DictConfig, str]]:
    """(run config, folder name) per instance and seed, instances first: `cfg` with `instance` and `seed` set (the run
    applies its instance, `instance_config`)."""
    found = []
    for inst in instances:
        for seed in seeds:
            one = copy.deepcopy(cfg)
            with open_dict(one):
                one.instance, one.seed = inst.id, seed
                if "runs" in one:  # rlopt evaluate's: each folder is one run (`rlopt.reporting.runs.is_run`)
                    one.runs = 1
            found.append((one, f"{inst.id}_s{seed}"))
    return found


def run_each(run_dir: Path, todo: list[tuple[DictConfig, str]], run_one: Callable[[DictConfig, Path], dict]) -> list[dict]:
    """`run_one(cfg, folder)` for each job, in order (a finished folder is left as it is by `run_experiment`);
    failures listed at the end."""
    summaries, failed = [], []
    for cfg, name in todo:
        try:
            summaries.append(run_one(cfg, Path(run_dir) / name))
        except Exception as err:  # recorded in the folder's summary.json by the run itself
            failed.append(f"{name}: {type(err).__name__}: {err}")
    log.info("%d/%d instance runs finished", len(todo) - len(failed), len(todo))
    if failed:
        raise RunsFailed(f"{len(failed)} of {len(todo)} instance runs failed (their summary.json says why): "
                         + "; ".join(failed))
    return summaries


def instance_config(cfg: DictConfig) -> DictConfig:
    """`cfg` with its `instance` applied (`rlopt.run.experiment` runs this, so train, evaluate and tune trials alike
    train the instance they name); as it is without one. Applying is idempotent: a saved config stays the same."""
    instance = OmegaConf.select(cfg, "instance")
    if instance is None or instance == "all":
        return cfg
    instances = load_set(cfg, check=False)
    if instances is None:
        raise UserError(f"instance={instance} needs an instance set: add instances=<set> (conf/instances/) "
                        "or instances.file=")
    return apply(cfg, instances.get(str(instance)))


def check_run(cfg: DictConfig, instances: InstanceSet) -> None:
    """A single run of `rlopt train` with an instance set: a named `instance` must be in it; an agent without one
    draws a train instance per run (`rlopt.instances.sampling`); a fixed controller needs one named."""
    if cfg.instance is not None:
        instances.get(str(cfg.instance))
        return
    if cfg.controller.type != "sb3":
        raise UserError(f"instances={instances.name}: controller={cfg.controller.name} runs one task: name it with "
                        f"instance=<id> ({', '.join(i.id for i in instances.all)}), or run each with instance=all")


def run_instance(cfg: DictConfig, task_name: str) -> tuple[str | None, str | None]:
    """(id, part) of the instance a run's controlled episode trained (its Task is named by it); (None, None) for a run
    without an instance set."""
    if OmegaConf.select(cfg, "instances") is None:
        return None, None
    instances: InstanceSet | None = load_set(cfg, check=False)
    if instances is None:
        return None, None
    inst = instances.get(task_name)
    return inst.id, inst.part
