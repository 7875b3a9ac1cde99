"""`rlopt evaluate policy=PATH`: deploy a saved agent, frozen and deterministic, on a fresh run.

The environment takes its action space and observation features from the policy's
`policy.json`, so the agent sees what it was trained on; dataset, model, seed and budget come
from the command line (the transfer experiment). A policy whose spaces do not fit is refused
with one clear line. A layer-wise policy (actions.kind=layer_lr) acts once per layer, so it runs
on a model of any depth; it also keeps the decision interval it was trained with unless
env.steps_per_action is given.

The run's `.hydra/config.yaml` holds the config actually run (the policy's controller and
features; `rlopt.run.experiment.run_experiment` writes it), so the run folder describes the run like any `rlopt train` folder.

`runs=K` > 1 evaluates the policy on K fresh runs at once, seeds seed..seed+K-1, each in its own
process (`spawn`; `trainer.threads` defaults to the cores / K) and its own run folder
`run<i>_s<seed>/` under the evaluation folder, with its own `.hydra/config.yaml` and
`overrides.yaml` (the command's, with that seed), so `rlopt report <evaluation folder>` tables
them as K seeds of one method. The evaluation folder itself is then no run (`rlopt.reporting.runs.is_run`).

`instances=<set>` evaluates the policy on every test instance of the set x `runs` seeds, one after another,
each in `<instance id>_s<seed>/` (`rlopt.instances.runs`); `instance=all` on every instance (train ones too,
to compare seen with unseen tasks); `instance=<id>` on that one instance only, in the same layout.
"""

from __future__ import annotations

import concurrent.futures
import copy
import logging
import multiprocessing
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from rlopt.config import validate_evaluate
from rlopt.controllers.sb3 import FrozenPolicy, load_policy
from rlopt.env.layer_actions import LAYER_KIND
from rlopt.errors import RunsFailed, UserError
from rlopt.files import atomic_path
from rlopt.hydra_app import hydra_entry
from rlopt.instances import jobs, load_set, run_each
from rlopt.paths import conf_dir
from rlopt.resources import cpu_count
from rlopt.run.experiment import run_experiment
from rlopt.run.failures import write_failure

log = logging.getLogger(__name__)


def evaluation_config(cfg: DictConfig, meta: dict) -> DictConfig:
    """`cfg` with the saved policy's controller (and observation features) in place of the composed ones.
    A `portfolio` given on the command line must be the optimizer list the policy was trained on."""
    portfolio, trained_on = cfg.portfolio, meta["actions"].get("choices")
    if portfolio is not None and list(portfolio) != trained_on:
        raise UserError(f"portfolio={list(portfolio)} does not match policy={cfg.policy}, which chooses among {trained_on}")
    controller = {"name": f"{meta['controller']}_frozen", "type": "frozen", "algo": meta["algo"], "actions": meta["actions"]}
    layerwise = meta["actions"].get("kind") == LAYER_KIND
    if layerwise:  # the layer-wise env reads these from the controller (the keys of its schema)
        controller.update(per_layer=True, difference_reward=False)  # a frozen policy is paid nothing: no counterfactual
    run_cfg = copy.deepcopy(cfg)
    with open_dict(run_cfg):
        run_cfg.controller = OmegaConf.create(controller)
        run_cfg.env.features = meta["features"]
        if layerwise and run_cfg.env.steps_per_action is None:  # the interval it was trained at, unless one is given
            run_cfg.env.steps_per_action = meta["steps_per_action"]
    return run_cfg


def evaluate(cfg: DictConfig, run_dir: Path) -> dict | list[dict]:
    """One frozen-policy run into `run_dir` (its summary), or with `runs=K` > 1, K of them in parallel into
    sub-folders (their summaries, in seed order)."""
    validate_evaluate(cfg)
    runs = cfg.runs
    model, meta = load_policy(cfg.policy)  # a bad policy or portfolio fails here, once, not in K processes
    run_cfg = evaluation_config(cfg, meta)
    instances = load_set(cfg)
    if instances is not None:  # the test instances (instance=all: every one; or the one named) x seeds, a folder each
        if cfg.instance is None:
            chosen = instances.test
        else:
            chosen = instances.all if cfg.instance == "all" else [instances.get(str(cfg.instance))]
        if not chosen:
            raise UserError(f"instances={instances.name} has no test instances to evaluate on")
        seeds = [int(cfg.seed) + i for i in range(runs)]
        return run_each(Path(run_dir), jobs(run_cfg, chosen, seeds), lambda one, folder: run_experiment(
            one, folder, lambda _: FrozenPolicy(model, cfg.policy)))
    if runs > 1:
        return evaluate_parallel(cfg, Path(run_dir), runs)
    return run_experiment(run_cfg, run_dir, lambda _: FrozenPolicy(model, cfg.policy))


def evaluate_parallel(cfg: DictConfig, run_dir: Path, runs: int) -> list[dict]:
    """`runs` single evaluations, seeds seed + i, at once in spawned processes, each into `run<i>_s<seed>/`."""
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    jobs = []
    for i in range(runs):
        seed = int(cfg.seed) + i
        one = copy.deepcopy(cfg)
        with open_dict(one):
            one.seed, one.runs = seed, 1
            one.trainer.progress = False  # K progress bars would garble one terminal
            if one.trainer.threads is None:
                one.trainer.threads = max(1, cpu_count() // runs)
        kept = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in ("seed", "runs")]
        jobs.append((one, run_dir / f"run{i}_s{seed}", [*kept, f"seed={seed}"]))
    with concurrent.futures.ProcessPoolExecutor(runs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_evaluate_one, *job) for job in jobs]
        outcomes = [(job[1], future.exception() or future.result()) for job, future in zip(jobs, futures)]
    failed = [f"{folder.name}: {type(out).__name__}: {out}" for folder, out in outcomes if isinstance(out, BaseException)]
    log.info("rlopt evaluate: %d/%d runs finished", runs - len(failed), runs)
    if failed:
        raise RunsFailed(f"{len(failed)} of {runs} evaluation runs failed (their summary.json says why): "
                         + "; ".join(failed))
    return [out for _, out in outcomes]


def _evaluate_one(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> dict:
    """One of `evaluate_parallel`'s runs, in its own process (outside Hydra): its `.hydra/overrides.yaml` is the
    command's with its seed, as Hydra would have written it; `run_experiment` writes its config.yaml. A run refused
    (its folder left as it was) still records why in its summary.json, as a sweep's job does: the command lists it."""
    model, meta = load_policy(cfg.policy)
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    with atomic_path(run_dir / ".hydra" / "overrides.yaml") as tmp:
        OmegaConf.save(OmegaConf.create(overrides), tmp)
    run_cfg = evaluation_config(cfg, meta)
    try:
        return run_experiment(run_cfg, run_dir, lambda _: FrozenPolicy(model, cfg.policy))
    except UserError as err:
        write_failure(run_dir, err, run_cfg, keep_existing=True)
        raise


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    hydra_entry("evaluate", cfg, evaluate)


if __name__ == "__main__":
    main()
