"""The command line as a user meets it: subcommands, Hydra flags, and one-line errors for bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest

TINY = ["+debug=tiny", "trainer.epochs=1"]


@pytest.mark.slow
def test_train_via_python_m_writes_a_run_folder(cli, tmp_path):
    result = cli("train", "controller=sgd", *TINY, "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "run"
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    assert len(pd.read_csv(run / "metrics.csv")) == 1
    assert (run / ".hydra" / "config.yaml").is_file() and (run / ".hydra" / "overrides.yaml").is_file()


@pytest.mark.slow
def test_hydra_flags_pass_through(cli, tmp_path):
    result = cli("train", "controller=dqn_2opt", "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0
    assert "buffer_size: 5000" in result.stdout and "target_update_interval: 20" in result.stdout
    helped = cli("train", "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "controller" in helped.stdout


def test_unknown_command_and_no_command(cli_inproc, tmp_path):
    bad = cli_inproc("trian", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown command 'trian'" in bad.stderr and "train" in bad.stderr
    usage = cli_inproc(cwd=tmp_path)
    assert usage.returncode == 2 and "usage: rlopt" in usage.stdout


def test_unknown_group_option_lists_the_available_ones(cli_inproc, tmp_path):
    result = cli_inproc("train", "controller=ppo_9opt", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "ppo_3opt" in result.stderr and "dqn_2opt" in result.stderr


@pytest.mark.parametrize("override, key", [
    ("trainer.epochs=0", "trainer.epochs=0"),
    ("trainer.batch_size=-4", "trainer.batch_size=-4"),
    ("optim.sgd.lr=0", "optim.sgd.lr=0"),
    ("optim.adam.lr=-1", "optim.adam.lr=-1"),
    ("optim.sam.rho=0", "optim.sam.rho=0"),
    ("dataset.val_size=100000", "dataset.val_size=100000"),
    ("trainer.device=tpu", "trainer.device=tpu"),
    ("trainer.amp=fp8", "trainer.amp=fp8"),
    ("env.features=[val_acc,banana]", "env.features"),
    ("reward.w_acc=oops", "reward.w_acc=oops"),  # a wrong type: refused at composition by the schema
])
def test_bad_values_fail_before_training_with_one_line(cli_inproc, tmp_path, override, key):
    result = cli_inproc("train", "controller=sgd", *TINY, override, "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rlopt train: error:") and key in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "metrics.csv").exists()


def test_cuda_without_cuda_is_refused(cli_inproc, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal cannot be observed")
    result = cli_inproc("train", "trainer.device=cuda", *TINY, cwd=tmp_path)
    assert result.returncode == 2 and "trainer.device=cuda" in result.stderr


def test_missing_dataset_offline_says_where_it_looked(cli_inproc, tmp_path):
    result = cli_inproc("train", "dataset=cifar10", "dataset.download=false", f"dataset.root={tmp_path / 'nothing'}", *TINY,
                        cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(tmp_path / "nothing") in result.stderr and "dataset.download=true" in result.stderr


def test_evaluate_with_a_missing_policy(cli_inproc, tmp_path):
    result = cli_inproc("evaluate", "policy=nope.zip", *TINY, cwd=tmp_path)
    assert result.returncode == 2 and "policy=nope.zip" in result.stderr and "Traceback" not in result.stderr


def test_report_with_no_runs(cli_inproc, tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli_inproc("report", "empty", cwd=tmp_path)
    assert result.returncode == 2 and "no runs" in result.stderr


def test_evaluate_saves_the_config_it_runs(cli_inproc, tmp_path):
    from omegaconf import OmegaConf

    assert cli_inproc("train", "controller=ppo_2opt", *TINY, "hydra.run.dir=run", cwd=tmp_path).returncode == 0
    result = cli_inproc("evaluate", "policy=run/policy.zip", "env.features=[val_loss]", *TINY, "hydra.run.dir=ev",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    saved = OmegaConf.load(tmp_path / "ev" / ".hydra" / "config.yaml")
    trained = OmegaConf.load(tmp_path / "run" / ".hydra" / "config.yaml")
    assert saved.controller.name == json.loads((tmp_path / "ev" / "summary.json").read_text())["controller"] == "ppo_2opt_frozen"
    assert list(saved.env.features) == list(trained.env.features), "the features the policy was trained on"


def test_report_flag_values_are_not_folders(cli_inproc, tmp_path):
    from rlopt.cli import _report_args

    assert _report_args(["--cfg", "job", "runs", "-cn", "report", "--info", "sweep"]) == \
        ["--cfg", "job", "-cn", "report", "--info", "dirs=['runs','sweep']"]
    assert _report_args(["-i", "defaults", "out=x"]) == ["-i", "defaults", "out=x"]
    result = cli_inproc("report", "--cfg", "job", "sweep=somewhere", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sweep: somewhere" in result.stdout and "dirs: []" in result.stdout
