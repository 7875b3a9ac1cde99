"""Faults: kill -9 and resume, divergence, and a table of bad inputs each with its one-line message."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from conftest import REPO, call_cli, make_cfg
from rlopt.train import train

TIMING = ["epoch_time_s", "controller_time_s", "checkpoint_time_s"]
# The default reward (composite, charging gradient evaluations) is reproducible. One thread: float
# reductions then add up in the same order in every process, whatever earlier tests set.
RUN = ["+debug=tiny", "trainer.threads=1", "trainer.epochs=8", "dataset.train_subset=null",
       "dataset.val_size=200"]


def _rows(path):
    return pd.read_csv(path).drop(columns=TIMING)


def _kill_after_rows(args: list[str], cwd, metrics, rows: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "rlopt", "train", *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) > rows:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_sigkill_then_resume_equals_the_uninterrupted_run(tmp_path):
    """kill -9 from outside, at whatever moment the run is in once its 3rd row is on disk. Every controller family
    is SIGKILLed at exact places (in a checkpoint write, after a row, in finishing) and compared file by file with
    an uninterrupted run by the fault campaign (tests/fault_campaign.py); this is the kill that lands anywhere."""
    args = ["controller=ppo_layerwise", "env.steps_per_action=20", *RUN]
    reference = call_cli("train", *args, "hydra.run.dir=ref", cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr

    _kill_after_rows([*args, "hydra.run.dir=run"], tmp_path, tmp_path / "run" / "metrics.csv", rows=3)
    assert not (tmp_path / "run" / "summary.json").exists()
    resumed = call_cli("train", "resume=run", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr

    got, want = _rows(tmp_path / "run" / "metrics.csv"), _rows(tmp_path / "ref" / "metrics.csv")
    assert list(got["step"]) == list(range(1, 9)), "missing or duplicated steps"
    pd.testing.assert_frame_equal(got, want)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed" and not (tmp_path / "run" / "checkpoint.pt").exists()
    # the summary is built from rows read back from metrics.csv after the resume: all but timings agree
    timing = {"wall_time_s", "controller_time_s", "controller_time_share", "checkpoint_time_s", "epoch_time_s"}
    reference_summary = json.loads((tmp_path / "ref" / "summary.json").read_text())
    assert {k: v for k, v in summary.items() if k not in timing} == \
           {k: v for k, v in reference_summary.items() if k not in timing}


def test_divergence_is_recorded_and_the_run_completes(tmp_path):
    summary = train(make_cfg("controller=sgd", "optim.sgd.lr=1e6", "trainer.epochs=5"), tmp_path)
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert summary["status"] == "diverged" and df["diverged"].iloc[-1]
    assert len(df) < 5, "divergence must end the episode"
    assert -2000 <= df["reward"].iloc[-1] <= -1000
    for key in ("test_loss", "test_acc", "best_epoch", "epoch_time_s", "grad_evals"):
        assert key in summary
    assert 0 <= summary["test_acc"] <= 1 and math.isfinite(summary["test_loss"])  # the best checkpoint is finite


def test_bad_inputs_each_get_one_line_and_exit_2(tmp_path, trained_run):
    (tmp_path / "notarun").mkdir()
    done = tmp_path / "done"
    assert call_cli("train", "controller=sgd", *RUN, "trainer.epochs=1", "hydra.run.dir=done", cwd=tmp_path).returncode == 0
    (tmp_path / "afile").write_text("x")
    broken = tmp_path / "broken"
    shutil.copytree(done, broken)
    (broken / "summary.json").unlink()
    (broken / "checkpoint.pt").write_bytes(b"not a checkpoint")
    two, three = trained_run("ppo_2opt"), trained_run("ppo_3opt")
    shutil.copy(three / "policy.zip", tmp_path / "mixed.zip")
    shutil.copy(two / "policy.json", tmp_path / "mixed.json")

    cases = [
        (["train", "resume=notarun"], "resume=notarun is not a run folder"),
        (["train", f"resume={broken}"], "is unreadable"),
        (["train", "hydra.run.dir=afile/run"], "cannot write the output folder"),
        (["evaluate", "policy=missing.zip"], "policy=missing.zip: no such file"),
        (["evaluate", f"policy={tmp_path / 'mixed.zip'}", "trainer.epochs=1"], "does not fit this environment"),
        (["report", "notarun"], "no runs under"),
        (["train", "controller=sgd", "trainer.max_steps=0"], "trainer.max_steps=0"),
        (["train", "controller=sgd", "env.steps_per_action=-1"], "env.steps_per_action=-1"),
        (["train", "controller=sgd", "optim.sgd.momentum=1.5"], "optim.sgd.momentum=1.5"),
        (["train", f"resume={broken}", "trainer.epochs=9"], "trainer.epochs=9 is not allowed with resume="),
        (["evaluate", f"policy={two / 'policy.zip'}", "controller=ppo_lr"], "the policy brings its own controller"),
        (["report", "done", f"out={'y' * 300}"], "a folder name of 300 bytes"),
        (["train", "trainer.batch_size=0"], "trainer.batch_size=0 is not allowed"),
    ]
    for args, message in cases:
        result = call_cli(*args, cwd=tmp_path)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2, (args, result.stderr)
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr, (args, result.stderr)


def test_metrics_rows_read_back_as_they_were_written(tmp_path):
    from rlopt.metrics import MetricsWriter

    rows = [{"episode": 0, "step": 1, "action": 2, "optimizer": "sam", "lr": 0.05, "val_acc": None, "train_loss": float("nan"),
             "reward": -1e-7, "diverged": False},
            {"episode": 0, "step": 2, "action": 0.75, "optimizer": "sgd", "lr": 1 / 3, "val_acc": 0.5, "train_loss": 2.0,
             "reward": 3.0e300, "diverged": True}]
    writer = MetricsWriter(tmp_path / "m.csv", columns=list(rows[0]))
    for row in rows:
        writer.write(row)
    writer.close()
    back = MetricsWriter.read(tmp_path / "m.csv")
    assert math.isnan(back[0].pop("train_loss")) and math.isnan(rows[0].pop("train_loss"))
    assert back == rows and [type(v) for v in back[1].values()] == [type(v) for v in rows[1].values()]


def test_checkpoints_do_not_grow_with_the_run(tmp_path):
    import torch

    sizes = {}
    for epochs in (2, 12):
        train(make_cfg("controller=sgd", f"trainer.epochs={epochs}", "checkpoint.keep=true"), tmp_path / str(epochs))
        state = torch.load(tmp_path / str(epochs) / "checkpoint.pt", weights_only=False)
        assert state["recorder"]["files"]["metrics.csv"]["rows"] == epochs and "rows" not in state["recorder"]
        sizes[epochs] = (tmp_path / str(epochs) / "checkpoint.pt").stat().st_size
    assert sizes[12] < sizes[2] * 1.05, sizes
