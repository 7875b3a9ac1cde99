"""`rlopt train`: one run, a pure function of the config (`train`) plus a thin @hydra.main wrapper.

The run's life (folder, resume, config check, controller, environment, runner, summary) is
`rlopt.run.experiment.run_experiment`; this command only decides which folder and config it runs:
`resume=DIR` continues DIR with DIR's own config.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import hydra
from omegaconf import DictConfig

from rlopt.hydra_app import hydra_entry
from rlopt.paths import conf_dir
from rlopt.run.experiment import run_experiment
from rlopt.run.folder import resume_target
from rlopt.run.runner import Observer


def train(cfg: DictConfig, run_dir: Path, observers: Iterable[Observer] = ()) -> dict:
    """Run one experiment described by `cfg` into `run_dir`, or continue the run `cfg.resume` in its own
    folder with its own config; returns the summary. `observers`: see `run_experiment`."""
    resuming = bool(cfg.resume)
    if resuming:
        cfg, run_dir = resume_target(cfg.resume)
    return run_experiment(cfg, run_dir, observers=observers, own_config=resuming)


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="train")
def main(cfg: DictConfig) -> None:
    hydra_entry("train", cfg, train)


if __name__ == "__main__":
    main()
