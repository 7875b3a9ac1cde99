"""`rlopt train`: one run, a pure function of the config (`train`) plus a thin @hydra.main wrapper.

The run's life (folder, resume, config check, controller, environment, runner, summary) is
`rlopt.run.experiment.run_experiment`; this command only decides which folder and config it runs:
`resume=DIR` continues DIR with DIR's own config; with an instance set (`instances=<set>`), `instance=<id>`
runs that instance, `instance=all` each one into its own sub-folder (`rlopt.instances`); `runs=K` > 1 runs seeds
seed..seed+K-1 at once, a sub-folder each (`rlopt.run.seeds`: K processes, or one population).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import hydra
from omegaconf import DictConfig

from rlopt.config import validate_runs
from rlopt.controllers import run_controller
from rlopt.hydra_app import hydra_entry
from rlopt.instances import check_run, jobs, load_set, run_each
from rlopt.paths import conf_dir
from rlopt.run.experiment import run_experiment
from rlopt.run.folder import resume_target
from rlopt.run.runner import Observer
from rlopt.run.seeds import run_seeds


def train(cfg: DictConfig, run_dir: Path, observers: Iterable[Observer] = ()) -> dict:
    """Run one experiment described by `cfg` into `run_dir`, or continue the run `cfg.resume` in its own
    folder with its own config; returns the summary. `observers`: see `run_experiment`."""
    resuming = bool(cfg.resume)
    if resuming:
        cfg, run_dir = resume_target(cfg.resume)
    else:
        validate_runs("train", cfg)
        if cfg.runs > 1:  # seeds seed..seed+runs-1, a folder each: K processes, or one population
            return run_seeds(cfg, Path(run_dir), _train_seed, run_controller)
    # every instance is applied once up front (a key the config lacks fails before any run) unless one is named:
    # then only it runs, and run_experiment applies it (a sweep's jobs would otherwise each apply the whole set)
    instances = None if resuming else load_set(cfg, check=cfg.instance in (None, "all"))
    if instances is not None and cfg.instance == "all":  # every instance of the set, a folder each
        return run_each(run_dir, jobs(cfg, instances.all, [int(cfg.seed)]),
                        lambda one, folder: run_experiment(one, folder, run_controller, observers=observers))
    if instances is not None:
        check_run(cfg, instances)
    return run_experiment(cfg, run_dir, run_controller, observers, own_config=resuming)


def _train_seed(cfg: DictConfig, run_dir: Path) -> dict:
    """One seed of `runs=K` in its own process (`rlopt.run.seeds`)."""
    return run_experiment(cfg, run_dir, run_controller)


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="train")
def main(cfg: DictConfig) -> None:
    hydra_entry("train", cfg, train)


if __name__ == "__main__":
    main()
