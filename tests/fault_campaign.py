"""The fault-injection campaign (run by tests/test_faults.py; also by hand: `python tests/fault_campaign.py OUT`).

For each controller family: one uninterrupted run, and one run SIGKILLed at drawn points (seeded), resumed
after each kill (alternately by `resume=DIR` and by rerunning the same command into the folder), then
compared file by file with the uninterrupted one. The kills come from the test-only hook
`RLOPT_TEST_KILL_AT=<point>:<n>` (rlopt/run/killpoints.py), so they land exactly where drawn, including while a
checkpoint is being written and right after summary.json. Each run is a fork of this process, which has
imported torch, SB3, Hydra and what a run imports lazily (torch._dynamo, which every optimizer's constructor
imports and which brings sympy; the plotting module) once (it runs no torch op itself, so the children start
clean); that keeps the campaign to the runs' own time instead of ~3 s of imports per process.

Prints a JSON report: per family the kills drawn and whether each happened, the files compared and every
difference found. Exit status 0 when every kill happened and no file differs.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import time
import zipfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import stable_baselines3  # noqa: E402,F401  (imported once here, shared by every forked run)
import torch  # noqa: E402,F401
import torch._dynamo  # noqa: E402,F401  (torch.optim.Optimizer's constructor imports it: ~1 s, sympy included)

import rlopt.reporting.plots  # noqa: E402,F401  (matplotlib)
import rlopt.train  # noqa: E402,F401
from rlopt.cli import main as rlopt_main  # noqa: E402
from rlopt.run.killpoints import VARIABLE  # noqa: E402

COMMON = ["+debug=tiny", "trainer.threads=1", "trainer.epochs=4", "dataset.train_subset=128"]
PPO_SMALL = ["controller.hyperparams.n_steps=2", "controller.hyperparams.batch_size=2"]
FAMILIES = {
    "fixed": ["controller=sam", "trainer.plots=true"],
    "schedule": ["controller=schedule", "controller.schedule=onecycle"],
    "random": ["controller=random"],
    "dqn_2opt": ["controller=dqn_2opt"],
    "dqn_lr": ["controller=dqn_lr"],
    "ppo_3opt": ["controller=ppo_3opt", *PPO_SMALL],
    "ppo_lr": ["controller=ppo_lr", *PPO_SMALL],
    "ppo_layerwise": ["controller=ppo_layerwise", "env.steps_per_action=2", "controller.hyperparams.n_steps=2",
                      "controller.hyperparams.batch_size=8", "trainer.plots=true"],
    "dqn_episodes": ["controller=dqn_2opt", "controller.episodes=2", "trainer.epochs=3"],
}
TIMING_COLUMNS = {"epoch_time_s", "controller_time_s", "checkpoint_time_s"}
TIMING_KEYS = {"wall_time_s", "controller_time_s", "controller_time_share", "checkpoint_time_s", "epoch_time_s"}
# not outputs of the run: the lock (pid), Hydra's log (timestamps) and Hydra's own config (it names the folder)
NOT_COMPARED = {".rlopt.lock", "train.log", ".hydra/hydra.yaml"}
# TensorBoard event files are named by time, host and pid, and a resumed run adds one (docs/guide/reports.md: live view)
NOT_COMPARED_DIRS = ("tb/",)
TIMES: list[float] = []


def run(args: list[str], cwd: Path, kill_at: str | None, log: Path) -> int:
    """`rlopt ARGS` in a forked child; its exit status, or -9 when the kill point killed it."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.chdir(cwd)
            if kill_at:
                os.environ[VARIABLE] = kill_at
            with open(log, "a") as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                try:
                    rlopt_main(["train", *args])
                    code = 0
                except SystemExit as exit_:
                    code = exit_.code if isinstance(exit_.code, int) else 0
        finally:
            os._exit(code)
    started = time.perf_counter()
    _, status = os.waitpid(pid, 0)
    TIMES.append(time.perf_counter() - started)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def draw_kills(rng: random.Random, family: str, args: list[str]) -> list[str]:
    """Three kills per run: mid-run inside a checkpoint write (rows past the previous checkpoint are on disk
    then); then the first row after that resume, or in finishing (policy, plots); then right after summary.json."""
    second = ["row:1", "policy:1"] + (["plots:1"] if "trainer.plots=true" in args else [])
    return [f"checkpoint:{rng.randint(1, 2)}", rng.choice(second), "summary:1"]


def agent_contents(path: Path) -> dict:
    """An SB3 zip's members, less what differs between any two processes, stopped or not: the zip's timestamps,
    `start_time` (the clock when the agent began learning) and the readable descriptions SB3 writes beside each
    pickled class (they print memory addresses). The pickled values themselves are compared byte for byte."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(members.pop("data"))
    data.pop("start_time")
    for key, value in data.items():
        if isinstance(value, dict) and ":serialized:" in value:
            data[key] = value[":serialized:"]
    return {**members, "data": data}


def compare(ref: Path, got: Path) -> tuple[int, list[str]]:
    files = sorted(str(p.relative_to(ref)) for p in ref.rglob("*") if p.is_file())
    got_files = sorted(str(p.relative_to(got)) for p in got.rglob("*") if p.is_file())
    files, got_files = ([f for f in names if not f.startswith(NOT_COMPARED_DIRS)] for names in (files, got_files))
    differences = [f"{name}: only in one run" for name in sorted(set(files) ^ set(got_files)) if name not in NOT_COMPARED]
    for name in files:
        if name in NOT_COMPARED or name not in got_files:
            continue
        a, b = ref / name, got / name
        if name.endswith(".csv"):
            x, y = pd.read_csv(a), pd.read_csv(b)
            x, y = (d.drop(columns=[c for c in d.columns if c in TIMING_COLUMNS]) for d in (x, y))
            same = x.equals(y)
        elif name == "summary.json":
            x, y = (json.loads(p.read_text()) for p in (a, b))
            same = {k: v for k, v in x.items() if k not in TIMING_KEYS} == {k: v for k, v in y.items() if k not in TIMING_KEYS}
        elif name.endswith(".zip"):
            same = agent_contents(a) == agent_contents(b)
        else:
            same = a.read_bytes() == b.read_bytes()
        if not same:
            differences.append(f"{name} differs")
    return len(files), differences


def family_campaign(family: str, folder: Path, kills: list[str]) -> dict:
    args = [*COMMON, *FAMILIES[family]]
    folder.mkdir(parents=True)
    log = folder / "console.log"
    reference = run([*args, "hydra.run.dir=ref"], folder, None, log)
    happened, codes = [], []
    for i, point in enumerate([*kills, None]):
        again = ["resume=run"] if i % 2 else [*args, "hydra.run.dir=run"]
        code = run(again, folder, point, log)
        codes.append(code)
        if point is not None:
            happened.append(code == -9)
    compared, differences = compare(folder / "ref", folder / "run")
    return {"kills": kills, "happened": happened, "exit_codes": codes, "reference_exit": reference,
            "files_compared": compared, "differences": differences, "run_times": [round(t, 2) for t in TIMES]}


def campaign(out: Path, seed: int = 0, families: list[str] | None = None, parallel: int = 2) -> dict:
    """Every family's sequence of runs in its own forked worker, `parallel` families at a time."""
    rng = random.Random(seed)
    plan = {family: draw_kills(rng, family, FAMILIES[family]) for family in families or list(FAMILIES)}
    running: dict[int, str] = {}
    for family, kills in plan.items():
        if len(running) >= parallel:
            running.pop(os.wait()[0])
        pid = os.fork()
        if pid == 0:
            try:
                result = family_campaign(family, out / family, kills)
                (out / family / "result.json").write_text(json.dumps(result))
            finally:
                os._exit(0)
        running[pid] = family
    while running:
        running.pop(os.wait()[0])
    return {family: json.loads((out / family / "result.json").read_text()) for family in plan}


if __name__ == "__main__":
    result = campaign(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0, sys.argv[3:] or None)
    print(json.dumps(result, indent=1))
    ok = all(r["reference_exit"] == 0 and all(r["happened"]) and r["exit_codes"][-1] == 0 and not r["differences"]
             for r in result.values())
    sys.exit(0 if ok else 1)
