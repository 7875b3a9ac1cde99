"""`runs=K`: K seeds of one command's run (seeds seed..seed+K-1) at once, each into its own run folder.

`rlopt train runs=K` and `rlopt evaluate policy=... runs=K` write run i into `run<i>_s<seed>/` under the command's
folder, with its own `.hydra/config.yaml` (`seed` its own, `runs=1`) and `overrides.yaml` (the command's, with that
seed, as a Hydra sweep job would have it), so `rlopt report <command folder>` tables them as K seeds of one method;
the command's folder itself is then no run (`rlopt.reporting.runs.is_run`). They train
- as K processes (`controller.vectorize=processes`, the default; `spawn`, `trainer.threads` defaults to the cores
  / K), each `run_one(cfg, folder)`, a module-level function so that it pickles; or
- as one vectorised population in this process (`controller.vectorize=population`, `rlopt.run.population`).

A folder whose run finished is left as it is, so rerunning the command continues an interrupted one. A run that
fails records why in its own summary.json; the command then says which failed in one line (`RunsFailed`).
"""

from __future__ import annotations

import concurrent.futures
import copy
import logging
import multiprocessing
from collections.abc import Callable
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from rlopt.errors import RunsFailed, UserError
from rlopt.files import atomic_path
from rlopt.resources import cpu_count
from rlopt.run.failures import write_failure
from rlopt.run.folder import CONFIG_DIR

log = logging.getLogger(__name__)

RunOne = Callable[[DictConfig, Path], dict]


def seed_jobs(cfg: DictConfig, run_dir: Path, threads: int | None) -> list[tuple[DictConfig, Path, list[str]]]:
    """(run config, folder, overrides) of each of `cfg.runs` seeds; `threads`: each run's `trainer.threads` unless
    the command set it."""
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    kept = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in ("seed", "runs")]
    jobs = []
    for i in range(int(cfg.runs)):
        seed = int(cfg.seed) + i
        one = copy.deepcopy(cfg)
        with open_dict(one):
            one.seed, one.runs = seed, 1
            one.trainer.progress = False  # K progress bars would garble one terminal
            if one.trainer.threads is None and threads is not None:
                one.trainer.threads = threads
        jobs.append((one, Path(run_dir) / f"run{i}_s{seed}", [*kept, f"seed={seed}"]))
    return jobs


def write_overrides(run_dir: Path, overrides: list[str], cfg: DictConfig | None = None) -> None:
    """The run's `.hydra/overrides.yaml`, as Hydra writes a sweep job's, and with `cfg` its `config.yaml` (else
    `run_experiment` writes it)."""
    (run_dir / CONFIG_DIR).mkdir(parents=True, exist_ok=True)
    with atomic_path(run_dir / CONFIG_DIR / "overrides.yaml") as tmp:
        OmegaConf.save(OmegaConf.create(overrides), tmp)
    if cfg is not None:
        with atomic_path(run_dir / CONFIG_DIR / "config.yaml") as tmp:
            tmp.write_text(OmegaConf.to_yaml(cfg), encoding="utf-8")


def run_seeds(cfg: DictConfig, run_dir: Path, run_one: RunOne, make_controller) -> list[dict]:
    """Each seed's summary, in seed order (see the module docstring). `make_controller`: the population's, as
    `run_experiment` takes it."""
    runs = int(cfg.runs)
    if str(cfg.controller.vectorize) == "population":
        from rlopt.run.population import run_population  # imports the population engine only where used

        return run_population(seed_jobs(cfg, run_dir, None), make_controller)
    jobs = seed_jobs(cfg, run_dir, max(1, cpu_count() // runs))
    with concurrent.futures.ProcessPoolExecutor(runs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_run_job, run_one, *job) for job in jobs]
        outcomes = [(job[1], future.exception() or future.result()) for job, future in zip(jobs, futures)]
    failed = [f"{folder.name}: {type(out).__name__}: {out}" for folder, out in outcomes if isinstance(out, BaseException)]
    log.info("%d/%d runs finished", runs - len(failed), runs)
    if failed:
        raise RunsFailed(f"{len(failed)} of {runs} runs failed (their summary.json says why): " + "; ".join(failed))
    return [out for _, out in outcomes]


def _run_job(run_one: RunOne, cfg: DictConfig, run_dir: Path, overrides: list[str]) -> dict:
    """One seed in its own process (outside Hydra). A run refused (its folder left as it was) still records why in
    its summary.json, as a sweep's job does: the command lists it."""
    write_overrides(run_dir, overrides)
    try:
        return run_one(cfg, run_dir)
    except UserError as err:
        write_failure(run_dir, err, cfg, keep_existing=True)
        raise
