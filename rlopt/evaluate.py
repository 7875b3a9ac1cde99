"""`rlopt evaluate policy=PATH`: deploy a saved agent, frozen and deterministic, on a fresh run.

The environment takes its action space and observation features from the policy's
`policy.json`, so the agent sees what it was trained on; dataset, model, seed and budget come
from the command line (the transfer experiment). A policy whose spaces do not fit is refused
with one clear line. A layer-wise policy (actions.kind=layer_lr) acts once per layer, so it runs
on a model of any depth; it also keeps the decision interval it was trained with unless
env.steps_per_action is given.

The run's `.hydra/config.yaml` holds the config actually run (the policy's controller and
features; `rlopt.run.experiment.run_experiment` writes it), so the run folder describes the run like any `rlopt train` folder.

`runs=K` > 1 evaluates the policy on K fresh runs at once, seeds seed..seed+K-1, each in its own run folder
`run<i>_s<seed>/` under the evaluation folder (`rlopt.run.seeds`), so `rlopt report <evaluation folder>` tables
them as K seeds of one method: each in its own process, or with `controller.vectorize=population` (the one
`controller` key a command line may give here) all K as one vectorised population in this process
(`rlopt.run.population`), each member's folder what its own run writes.

`instances=<set>` evaluates the policy on every test instance of the set x `runs` seeds, one after another,
each in `<instance id>_s<seed>/` (`rlopt.instances.runs`); `instance=all` on every instance (train ones too,
to compare seen with unseen tasks); `instance=<id>` on that one instance only, in the same layout.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from rlopt.config import validate_evaluate, validate_runs
from rlopt.controllers.sb3 import FrozenPolicy, load_policy
from rlopt.env.layer_actions import LAYER_KIND
from rlopt.errors import UserError
from rlopt.hydra_app import hydra_entry
from rlopt.instances import jobs, load_set, run_each
from rlopt.paths import conf_dir
from rlopt.run.experiment import run_experiment
from rlopt.run.seeds import run_seeds

log = logging.getLogger(__name__)


def evaluation_config(cfg: DictConfig, meta: dict) -> DictConfig:
    """`cfg` with the saved policy's controller (and observation features) in place of the composed ones.
    A `portfolio` given on the command line must be the optimizer list the policy was trained on."""
    portfolio, trained_on = cfg.portfolio, meta["actions"].get("choices")
    if portfolio is not None and list(portfolio) != trained_on:
        raise UserError(f"portfolio={list(portfolio)} does not match policy={cfg.policy}, which chooses among {trained_on}")
    controller = {"name": f"{meta['controller']}_frozen", "type": "frozen", "algo": meta["algo"], "actions": meta["actions"],
                  "vectorize": str(cfg.controller.vectorize)}  # how runs=K seeds train (rlopt.run.seeds)
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
    validate_runs("evaluate", cfg)
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
    if runs > 1:  # K seeds at once, a folder each: K processes, or one population (controller.vectorize)
        return run_seeds(run_cfg, Path(run_dir), _evaluate_seed, lambda _: FrozenPolicy(model, cfg.policy))
    return run_experiment(run_cfg, run_dir, lambda _: FrozenPolicy(model, cfg.policy))


def _evaluate_seed(run_cfg: DictConfig, run_dir: Path) -> dict:
    """One seed of `runs=K` in its own process (`rlopt.run.seeds`): the policy loaded there."""
    model, _ = load_policy(run_cfg.policy)
    return run_experiment(run_cfg, run_dir, lambda _: FrozenPolicy(model, run_cfg.policy))


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    hydra_entry("evaluate", cfg, evaluate)


if __name__ == "__main__":
    main()
