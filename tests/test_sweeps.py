"""Multiruns through the launcher presets, then `rlopt report` over them (slow: the launchers start processes).

One joblib sweep and one submitit_local sweep (the cluster path, without a cluster), each with
jobs that fail (`seed=-1` is refused inside the job) next to jobs that finish. The sweep must
list the failures and exit 1; the report must table the finished runs with the statistics of
their summaries and flag the failed ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import call_cli
from rlopt.paths import conf_dir

TINY = ["+debug=tiny", "dataset.train_subset=128", "dataset.val_size=64"]


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweeps")
    joblib = call_cli("train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "controller=sgd,sam",
                     "seed=0,1,-1", *TINY, "hydra.sweep.dir=joblib_sweep", cwd=root)
    submitit = call_cli("train", "-m", "hydra/launcher=submitit_local", "controller=adam", "seed=0,-1", *TINY,
                       "hydra.sweep.dir=submitit_sweep", cwd=root)
    return root, joblib, submitit


@pytest.mark.slow
def test_sweeps_go_on_past_failures_and_list_them(sweeps):
    root, joblib, submitit = sweeps
    assert "Joblib.Parallel(n_jobs=2" in joblib.stdout + joblib.stderr
    assert (root / "submitit_sweep" / ".submitit").is_dir()
    for result, sweep, finished, failed in ((joblib, "joblib_sweep", 4, 2), (submitit, "submitit_sweep", 1, 1)):
        assert result.returncode == 1, result.stderr
        assert f"rlopt sweep: {finished}/{finished + failed} jobs finished" in result.stderr
        listed = [line for line in result.stderr.splitlines() if line.strip().startswith("FAILED")]
        assert len(listed) == failed and all("_s-1:" in line and "seed=-1 is not allowed" in line for line in listed)
        summary = json.loads((root / sweep / "sweep_summary.json").read_text())
        assert summary["failed"] == failed and len(summary["jobs"]) == finished + failed


@pytest.mark.slow
def test_report_over_both_sweeps_tables_finished_runs_and_flags_failed_ones(sweeps):
    root, _, _ = sweeps
    result = call_cli("report", "joblib_sweep", "sweep=submitit_sweep", "out=rep", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "5 finished runs, 3 failed or incomplete" in result.stdout
    table = pd.read_csv(root / "rep" / "table.csv").set_index("method")
    assert sorted(table.index) == ["adam", "sam", "sgd"]
    for method, n in (("adam", 1), ("sam", 2), ("sgd", 2)):
        summaries = [json.loads(p.read_text()) for p in sorted(root.glob(f"*_sweep/*_{method}_s[0-9]/summary.json"))]
        assert len(summaries) == n and table.loc[method, "n"] == n and table.loc[method, "failed"] == 1
        for metric in ("test_acc", "test_f1", "test_precision", "test_recall", "converged_epoch", "grad_evals"):
            values = np.array([s[metric] for s in summaries], dtype=float)
            assert table.loc[method, f"{metric}_mean"] == pytest.approx(values.mean(), rel=1e-9)
            if n > 1:
                assert table.loc[method, f"{metric}_std"] == pytest.approx(values.std(ddof=1), rel=1e-9, abs=1e-12)
    # SAM costs two gradient evaluations per step
    assert table.loc["sam", "grad_evals_mean"] == 2 * table.loc["sgd", "grad_evals_mean"]
    problems = pd.read_csv(root / "rep" / "problems.csv")
    assert len(problems) == 3 and set(problems["status"]) == {"failed"} and (problems["seed"] == -1).all()
    assert "seed=-1 is not allowed" in (root / "rep" / "table.md").read_text()
    again = call_cli("report", "joblib_sweep", "submitit_sweep", "out=rep2", cwd=root)
    assert again.returncode == 0, again.stderr
    for name in ("table.csv", "table.md", "table.tex", "loss_table.md", "digits_accuracy.png", "digits_compute.png"):
        assert (root / "rep" / name).read_bytes() == (root / "rep2" / name).read_bytes(), name


@pytest.mark.slow
def test_a_job_failing_before_it_writes_anything_still_says_why(tmp_path):
    result = call_cli("evaluate", "-m", "policy=missing_a.zip,missing_b.zip", *TINY, "hydra.sweep.dir=ev", cwd=tmp_path)
    assert result.returncode == 1
    listed = [line for line in result.stderr.splitlines() if line.strip().startswith("FAILED")]
    assert len(listed) == 2 and "policy=missing_a.zip" in listed[0] and "policy=missing_b.zip" in listed[1]
    assert json.loads(next(Path(tmp_path / "ev").glob("0_*/summary.json")).read_text())["status"] == "failed"


def test_slurm_preset_sets_its_values_over_the_submitit_plugins():
    # joblib and submitit_local are the plugins' own configs, run by the sweeps above; slurm_gpu is rlopt's
    preset = OmegaConf.load(Path(conf_dir(), "hydra", "launcher", "slurm_gpu.yaml"))
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["hydra/launcher=slurm_gpu"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    keys = [k for k in preset if k != "defaults"]
    assert len(keys) >= 6 and {k: cfg.hydra.launcher[k] for k in keys} == {k: preset[k] for k in keys}
