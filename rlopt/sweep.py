"""Hydra callback that ends every multirun with a list of the jobs that failed, and why.

Each job's folder already holds its own summary.json (status completed, diverged or failed);
this reads them back, writes `sweep_summary.json` into the sweep folder, prints failures, and
makes the command exit non-zero when any job failed, so scripts notice.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from rlopt.metrics import write_json


def collect_jobs(sweep_dir: Path) -> list[dict]:
    jobs = []
    for cfg_file in sorted(Path(sweep_dir).glob("*/.hydra/config.yaml")):
        job_dir = cfg_file.parent.parent
        summary_file = job_dir / "summary.json"
        if summary_file.is_file():
            summary = json.loads(summary_file.read_text())
            status, error = summary.get("status", "unknown"), summary.get("error")
        else:
            status, error = "incomplete", "no summary.json (the job stopped before finishing)"
        jobs.append({"job": job_dir.name, "status": status, "error": error})
    return jobs


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        jobs = collect_jobs(sweep_dir)
        failed = [j for j in jobs if j["status"] in ("failed", "incomplete")]
        write_json(sweep_dir / "sweep_summary.json", {"jobs": jobs, "failed": len(failed)})
        print(f"rlopt sweep: {len(jobs) - len(failed)}/{len(jobs)} jobs finished in {sweep_dir}", file=sys.stderr)
        for job in failed:
            print(f"  FAILED {job['job']}: {job['error']}", file=sys.stderr)
        if failed:
            sys.exit(1)
