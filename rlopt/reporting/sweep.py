"""Hydra callback that ends every multirun with a list of the jobs that failed, and why.

Hydra calls `on_multirun_end` in the process that launched the sweep, whichever launcher ran
the jobs (basic, joblib, submitit). Each job's folder already holds its own summary.json (status
completed, diverged or failed); this reads them back, writes `sweep_summary.json` into the sweep
folder, prints the failures, and makes the command exit with status 1 when any job failed or
never finished, so scripts notice. The finished jobs' results stay where they are.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from rlopt.files import write_json
from rlopt.reporting.runs import FINISHED, find_runs, read_status


def collect_jobs(sweep_dir: Path) -> list[dict]:
    jobs = []
    for job_dir in find_runs([sweep_dir]):
        status, error, _ = read_status(job_dir)
        jobs.append({"job": str(job_dir.relative_to(sweep_dir)), "status": status, "error": error})
    return jobs


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        jobs = collect_jobs(sweep_dir)
        failed = [j for j in jobs if j["status"] not in FINISHED]
        write_json(sweep_dir / "sweep_summary.json", {"jobs": jobs, "failed": len(failed)})
        print(f"rlopt sweep: {len(jobs) - len(failed)}/{len(jobs)} jobs finished in {sweep_dir}", file=sys.stderr)
        for job in failed:
            print(f"  {job['status'].upper()} {job['job']}: {job['error']}", file=sys.stderr)
        if failed:
            sys.exit(1)
