"""How fast the CLI answers: this checkout against an earlier revision, side by side in one run.

    python scripts/bench_cli.py                      # against the branch main, 5 rounds
    python scripts/bench_cli.py --before REV --rounds 7 --write BENCHMARKS.md

Each case is a fresh `python -m rlopt ...` process (what a user waits for, interpreter start included), run
alternately for the earlier revision (a `git archive` of it in a temporary folder) and for this checkout, each
round in the same order, in a scratch folder. Reported per case: the median wall time and the median CPU time
(user + system of the child) over the rounds, and the ratio before/after of each, taken within each round.
CPU time is the steadier number on a shared machine: wall time also counts the time other processes held the
cores (the load average is printed beside the table).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CASES = {
    "train --cfg job": ["train", "--cfg", "job"],
    "train --help": ["train", "--help"],
    "refusal: seed=-1 (a value check)": ["train", "seed=-1"],
    "refusal: trainer.epoch=3 (a stray key)": ["train", "trainer.epoch=3"],
    "refusal: evaluate without policy=": ["evaluate"],
    "train +debug=tiny controller=sgd (whole run)": ["train", "+debug=tiny", "controller=sgd", "hydra.run.dir=run"],
}


def timed(checkout: Path, args: list[str], scratch: Path) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, exit status) of `python -m rlopt ARGS` importing `checkout`'s rlopt."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "HYDRA_FULL_ERROR": "0"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "rlopt", *args], cwd=scratch, env=env, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode


def _median(runs: list[tuple], i: int) -> float:
    return statistics.median(run[i] for run in runs)


def table(results: dict, before: str, rounds: int, loads: list[float]) -> str:
    """The markdown section: per case, both sides' exit status, median wall and CPU seconds, paired ratios."""
    rows = ["| case | exit (before, after) | wall before (s) | wall after (s) | wall ratio "
            "| CPU before (s) | CPU after (s) | CPU ratio |", "|:--|:--|--:|--:|--:|--:|--:|--:|"]
    for case in CASES:
        old, new = results[(case, "before")], results[(case, "after")]
        ratios = [statistics.median(a[i] / b[i] for a, b in zip(old, new)) for i in (0, 1)]
        rows.append(f"| `rlopt {case}` | {old[0][2]}, {new[0][2]} | {_median(old, 0):.2f} | {_median(new, 0):.2f} "
                    f"| {ratios[0]:.2f}x | {_median(old, 1):.2f} | {_median(new, 1):.2f} | {ratios[1]:.2f}x |")
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    return (f"\n## CLI response time (`python scripts/bench_cli.py`, {date.today()})\n\n"
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; before = {before}, after = {head.strip()}; "
            f"medians of {rounds} interleaved rounds, ratios paired within each round; load average at the start of "
            f"each round: {', '.join(f'{load:.1f}' for load in loads)}.\n\n" + "\n".join(rows) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="main", help="the earlier revision (default: main)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", type=Path, help="append the table as a section of this markdown file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "before"
        old.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.before], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        sides = {"before": old, "after": REPO}
        results = {(case, side): [] for case in CASES for side in sides}
        loads = []
        for _ in range(args.rounds):
            loads.append(os.getloadavg()[0])
            for case, cli_args in CASES.items():
                for side, checkout in sides.items():
                    scratch = Path(tempfile.mkdtemp(dir=tmp))
                    results[(case, side)].append(timed(checkout, cli_args, scratch))
    text = table(results, args.before, args.rounds, loads)
    print(text)
    if args.write:
        with open(args.write, "a") as f:
            f.write(text)


if __name__ == "__main__":
    main()
