"""`rlopt evaluate policy=PATH`: deploy a saved agent, frozen and deterministic, on a fresh run.

The environment takes its action space and observation features from the policy's
`policy.json`, so the agent sees what it was trained on; dataset, model, seed and budget come
from the command line (the transfer experiment). A policy whose spaces do not fit is refused
with one clear line. A layer-wise policy (actions.kind=layer_lr) acts once per layer, so it runs
on a model of any depth; it also keeps the decision interval it was trained with unless
env.steps_per_action is given.

The run's `.hydra/config.yaml` holds the config actually run (the policy's controller and
features; `run_experiment` writes it), so the run folder describes the run like any `rlopt train` folder.
"""

from __future__ import annotations

import copy
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from rlopt.controllers.sb3 import FrozenPolicy, load_policy
from rlopt.env.layer_actions import LAYER_KIND
from rlopt.errors import UserError
from rlopt.hydra_app import hydra_entry
from rlopt.paths import conf_dir
from rlopt.train import run_experiment


def evaluation_config(cfg: DictConfig, meta: dict) -> DictConfig:
    """`cfg` with the saved policy's controller (and observation features) in place of the composed ones.
    A `portfolio` given on the command line must be the optimizer list the policy was trained on."""
    portfolio, trained_on = cfg.get("portfolio"), meta["actions"].get("choices")
    if portfolio is not None and list(portfolio) != trained_on:
        raise UserError(f"portfolio={list(portfolio)} does not match policy={cfg.policy}, which chooses among {trained_on}")
    controller = {"name": f"{meta['controller']}_frozen", "type": "frozen", "algo": meta["algo"], "actions": meta["actions"]}
    layerwise = meta["actions"].get("kind") == LAYER_KIND
    if layerwise:  # the layer-wise env reads these from the controller (the keys of its schema)
        controller.update(features=meta["features"], steps_per_action=meta.get("steps_per_action"),
                          per_layer=True, difference_reward=False)  # a frozen policy is paid nothing: no counterfactual
    run_cfg = copy.deepcopy(cfg)
    with open_dict(run_cfg):
        run_cfg.controller = OmegaConf.create(controller)
        if not layerwise:
            run_cfg.env.features = meta["features"]
    return run_cfg


def evaluate(cfg: DictConfig, run_dir: Path) -> dict:
    if OmegaConf.is_missing(cfg, "policy"):
        raise UserError("policy is required: add policy=PATH, the policy.zip a `rlopt train` run wrote")
    model, meta = load_policy(cfg.policy)
    run_cfg = evaluation_config(cfg, meta)
    return run_experiment(run_cfg, run_dir, lambda: FrozenPolicy(model, cfg.policy))


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    hydra_entry("evaluate", cfg, evaluate)


if __name__ == "__main__":
    main()
