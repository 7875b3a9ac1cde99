"""End-to-end runs through `train()` and the CLI: the files of the contract, with real values."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import make_cfg
from rlopt.metrics import COLUMNS
from rlopt.train import train

CONTRACT_COLUMNS = ["epoch", "step", "action", "optimizer", "lr", "train_loss", "val_loss", "val_acc", "val_precision",
                    "val_recall", "val_f1", "reward", "epoch_time_s", "controller_time_s", "grad_evals"]
SUMMARY_KEYS = ["status", "test_loss", "test_acc", "test_precision", "test_recall", "test_f1", "best_epoch",
                "converged_epoch", "epoch_time_s", "wall_time_s", "grad_evals", "action_counts"]


@pytest.mark.parametrize("controller", ["sgd", "sam", "adam", "adadelta"])
def test_fixed_baselines_write_the_contract(tmp_path, controller):
    summary = train(make_cfg(f"controller={controller}", "trainer.plots=true"), tmp_path)
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert set(CONTRACT_COLUMNS) <= set(df.columns) and list(df.columns) == COLUMNS
    assert list(df["step"]) == [1, 2] and list(df["epoch"]) == [1.0, 2.0]
    assert (df["optimizer"] == controller).all()
    per_step = 2 if controller == "sam" else 1
    assert df["grad_evals"].iloc[-1] == per_step * df["opt_steps"].iloc[-1]
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert set(SUMMARY_KEYS) <= set(saved)
    assert saved["status"] == "completed" and saved["action_counts"] == {controller: 2}
    assert 0.0 <= saved["test_acc"] <= 1.0 and saved == summary
    for png in ("accuracy.png", "loss.png", "precision_recall_f1.png", "actions.png"):
        assert (tmp_path / png).stat().st_size > 1000


def test_digits_really_learns(tmp_path):
    summary = train(make_cfg("controller=sgd", "trainer.epochs=5", "dataset.train_subset=null"), tmp_path)
    assert summary["test_acc"] > 0.9


def test_forced_bf16_autocast_learns_and_is_recorded(tmp_path):
    summary = train(make_cfg("controller=sgd", "trainer.epochs=5", "dataset.train_subset=null", "trainer.amp=true"), tmp_path)
    assert summary["precision"] == "bf16 autocast" and summary["test_acc"] > 0.9


def test_amp_auto_follows_the_device_and_keeps_regression_in_fp32():
    import torch

    from rlopt.engine import use_bf16

    cpu = torch.device("cpu")
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert use_bf16("auto", cpu, classification=True) == native
    assert not use_bf16("auto", cpu, classification=False)
    assert use_bf16(True, cpu, classification=False) and not use_bf16(False, cpu, classification=True)


def test_polynomial_regression_leaves_classification_columns_empty(tmp_path):
    summary = train(make_cfg("dataset=polynomial", "controller=adam", "dataset.train_subset=null",
                             "dataset.val_size=32", "trainer.batch_size=32", "trainer.epochs=3"), tmp_path)
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert df["val_acc"].isna().all() and df["val_f1"].isna().all()
    assert summary["test_acc"] is None and summary["test_loss"] > 0
    assert summary["model"] == "maclaurin" and summary["precision"] == "fp32"
    assert (df["val_loss"].diff().iloc[1:] < 0).all() and df["val_loss"].iloc[-1] < 0.9 * df["val_loss"].iloc[0]


def test_max_steps_budget_and_steps_per_action(tmp_path):
    train(make_cfg("controller=sgd", "trainer.max_steps=10", "env.steps_per_action=3", "trainer.batch_size=32"), tmp_path)
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert list(df["opt_steps"]) == [3, 6, 9, 10]
    assert df["epoch"].iloc[-1] == pytest.approx(10 / 8)


def test_converged_epoch_follows_its_definition(tmp_path):
    summary = train(make_cfg("controller=sgd", "trainer.epochs=4"), tmp_path)
    df = pd.read_csv(tmp_path / "metrics.csv")
    best = df["val_acc"].max()
    expected = df.loc[df["val_acc"] >= best - 0.005, "epoch"].iloc[0]
    assert summary["converged_epoch"] == expected


def test_checkpoint_time_is_recorded_apart_from_the_controllers(tmp_path):
    train(make_cfg("controller=sgd", "checkpoint.every=1"), tmp_path / "on")
    train(make_cfg("controller=sgd", "checkpoint.every=0"), tmp_path / "off")
    on, off = pd.read_csv(tmp_path / "on" / "metrics.csv"), pd.read_csv(tmp_path / "off" / "metrics.csv")
    assert (on["checkpoint_time_s"].iloc[1:] > 0).all() and (off["checkpoint_time_s"] == 0).all()
    assert not (tmp_path / "on" / "checkpoint.pt").exists(), "a finished run removes its checkpoint"


def test_serialising_the_agent_counts_as_checkpoint_time(tmp_path, monkeypatch):
    import time

    from rlopt.controllers.sb3 import SB3Controller

    state = SB3Controller._state

    def slow_state(self, *args):
        time.sleep(0.2)
        return state(self, *args)

    monkeypatch.setattr(SB3Controller, "_state", slow_state)
    train(make_cfg("controller=ppo_2opt", "trainer.epochs=4", "checkpoint.every=1"), tmp_path)
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert (df["controller_time_s"] < 0.2).all(), df["controller_time_s"].tolist()
    assert (df["checkpoint_time_s"] >= 0.2).sum() >= 1


def test_the_final_test_pass_shows_progress(cli_inproc, tmp_path):
    result = cli_inproc("train", "controller=sgd", "+debug=tiny", "trainer.epochs=1", "trainer.progress=true",
                        "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "testing the best checkpoint on 360 examples" in result.stderr
