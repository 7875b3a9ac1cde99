"""`rlopt evaluate policy=PATH`: deploy a saved agent, frozen and deterministic, on a fresh run.

The environment takes its action space and observation features from the policy's
`policy.json`, so the agent sees what it was trained on; dataset, model, seed and budget come
from the command line (the transfer experiment). A policy whose spaces do not fit is refused
with one clear line.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from rlopt.controllers.sb3 import FrozenPolicy, load_policy
from rlopt.hydra_app import hydra_entry
from rlopt.paths import conf_dir
from rlopt.train import run_experiment


def evaluate(cfg: DictConfig, run_dir: Path) -> dict:
    model, meta = load_policy(cfg.policy)
    with open_dict(cfg):
        cfg.controller = OmegaConf.create({
            "name": f"{meta['controller']}_frozen", "type": "frozen", "algo": meta["algo"], "actions": meta["actions"],
        })
        cfg.env.features = meta["features"]
    return run_experiment(cfg, run_dir, lambda: FrozenPolicy(model, cfg.policy))


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    hydra_entry("evaluate", cfg, evaluate)


if __name__ == "__main__":
    main()
