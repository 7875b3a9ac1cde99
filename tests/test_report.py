"""`rlopt report` on hand-made run folders: exact statistics, method names, failures, determinism.

The folders hold what a run writes (.hydra/config.yaml, .hydra/overrides.yaml, summary.json,
metrics.csv) with known numbers, so every value in the tables can be checked without training.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from omegaconf import OmegaConf

from rlopt.errors import UserError
from rlopt.metrics import COLUMNS
from rlopt.report import report
from rlopt.reporting.runs import find_runs, method_labels


def make_run(root: Path, name: str, controller: str = "sgd", seed: int = 0, status: str | None = "completed",
             overrides: tuple[str, ...] = (), label: str | None = None, dataset: str = "digits",
             acc: float = 0.9, final_loss: float = 0.3, epochs: int = 3, optimizers=("sgd",)) -> Path:
    """A run folder as `rlopt train` leaves it; status None = stopped before summary.json."""
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    config = {"seed": seed, "label": label, "dataset": {"name": dataset}, "controller": {"name": controller}}
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (run / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump([f"controller={controller}", f"seed={seed}", *overrides]))
    per_step = 2 if controller == "sam" else 1
    rows = [{"episode": 0, "epoch": e, "step": e, "action": 0, "optimizer": optimizers[(e - 1) % len(optimizers)],
             "lr": 0.05 / e, "train_loss": 1.0 / e, "val_loss": final_loss * epochs / e, "val_acc": acc * e / epochs,
             "val_precision": acc, "val_recall": acc, "val_f1": acc, "reward": 0.1 * e, "epoch_time_s": 0.5,
             "controller_time_s": 0.01, "grad_evals": 10 * per_step * e, "opt_steps": 10 * e, "grad_norm": 1.0,
             "diverged": False} for e in range(1, epochs + 1)]
    pd.DataFrame(rows, columns=COLUMNS).to_csv(run / "metrics.csv", index=False)
    if status == "failed":
        (run / "summary.json").write_text(json.dumps({"status": "failed", "error": "RuntimeError: boom at epoch 2"}))
    elif status is not None:
        (run / "summary.json").write_text(json.dumps({
            "status": status, "controller": controller, "test_acc": acc, "test_f1": acc - 0.01,
            "test_precision": acc - 0.02, "test_recall": acc - 0.03, "test_loss": final_loss + 0.1,
            "converged_epoch": float(epochs - seed % 2), "grad_evals": rows[-1]["grad_evals"],
            "wall_time_s": 1.5 + seed, "final_val_loss": math.inf if status == "diverged" else final_loss,
            "epoch_time_s": {"min": 0.4 + 0.1 * seed, "median": 0.5, "max": 0.6 + 0.1 * seed},
        }))
    return run


@pytest.fixture
def study(tmp_path):
    """sgd (3 seeds), sam (2 finished + 1 diverged + 1 failed), adam (only an incomplete run)."""
    sweep = tmp_path / "sweep"
    for seed, acc in enumerate([0.90, 0.86, 0.95]):
        make_run(sweep, f"{seed}_sgd", "sgd", seed, acc=acc, final_loss=0.2 + 0.1 * seed)
    make_run(sweep, "3_sam", "sam", 0, acc=0.92, final_loss=0.25, optimizers=("sam",))
    make_run(sweep, "4_sam", "sam", 1, acc=0.94, final_loss=0.15, optimizers=("sam",))
    make_run(sweep, "5_sam", "sam", 2, status="diverged", acc=0.5, optimizers=("sam",))
    make_run(sweep, "6_sam", "sam", 3, status="failed")
    make_run(sweep, "7_adam", "adam", 0, status=None)
    return sweep


def md_rows(path: Path) -> list[list[str]]:
    """The cells of a Markdown pipe table's body rows, stripped of their padding."""
    lines = [line for line in path.read_text().splitlines() if line.startswith("|")][2:]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]


def _report(dirs, out: Path) -> dict:
    return report(OmegaConf.create({"dirs": [str(d) for d in dirs], "sweep": None, "out": str(out)}), out)


def test_table_numbers_are_the_statistics_of_the_summaries(study, tmp_path):
    _report([study], tmp_path / "rep")
    table = pd.read_csv(tmp_path / "rep" / "table.csv").set_index("method")
    assert list(table.index) == ["adam", "sam", "sgd"]
    for method, runs in {"sgd": ["0_sgd", "1_sgd", "2_sgd"], "sam": ["3_sam", "4_sam", "5_sam"]}.items():
        summaries = [json.loads((study / r / "summary.json").read_text()) for r in runs]
        for metric in ("test_acc", "test_f1", "test_precision", "test_recall", "converged_epoch", "grad_evals"):
            values = np.array([s[metric] for s in summaries], dtype=float)
            assert table.loc[method, f"{metric}_mean"] == pytest.approx(values.mean(), rel=1e-12)
            assert table.loc[method, f"{metric}_std"] == pytest.approx(values.std(ddof=1), rel=1e-12)
        assert table.loc[method, "n"] == 3
        assert table.loc[method, "epoch_time_min"] == pytest.approx(min(s["epoch_time_s"]["min"] for s in summaries))
        assert table.loc[method, "epoch_time_max"] == pytest.approx(max(s["epoch_time_s"]["max"] for s in summaries))
    assert table.loc["sam", "diverged"] == 1 and table.loc["sam", "failed"] == 1 and table.loc["sgd", "failed"] == 0
    assert table.loc["adam", "n"] == 0 and table.loc["adam", "incomplete"] == 1 and table.loc["adam", "failed"] == 0
    assert math.isnan(table.loc["adam", "test_acc_mean"])


def test_readable_tables_show_mean_std_and_flag_failures(study, tmp_path):
    result = _report([study], tmp_path / "rep")
    md = (tmp_path / "rep" / "table.md").read_text()
    rows = {row[1]: row for row in md_rows(tmp_path / "rep" / "table.md")}
    accs = np.array([0.90, 0.86, 0.95])
    assert rows["sgd"][2:4] == ["3", f"{100 * accs.mean():.2f} ± {100 * accs.std(ddof=1):.2f}"]
    assert rows["sam"][-1] == "1 diverged, 1 failed" and rows["adam"][2] == "0" and md.count("1 incomplete") == 1
    assert "failed run" in md and "6_sam" in md and "RuntimeError: boom at epoch 2" in md
    assert "incomplete run" in md and "7_adam" in md
    tex = (tmp_path / "rep" / "table.tex").read_text()
    assert r"\pm" in tex and r"test acc (\%)" in tex and "±" not in tex
    problems = pd.read_csv(tmp_path / "rep" / "problems.csv")
    assert sorted(problems["status"]) == ["failed", "incomplete"] and result["problems"] == 2


def test_loss_table_for_learning_rate_studies(study, tmp_path):
    _report([study], tmp_path / "rep")
    loss = pd.read_csv(tmp_path / "rep" / "loss_table.csv").set_index("method")
    assert loss.loc["sgd", "best_final_loss"] == pytest.approx(0.2)
    assert loss.loc["sgd", "avg_final_loss"] == pytest.approx(0.3)
    assert not loss.loc["sgd", "divergent_case"]
    # the diverged run's infinite loss is flagged, not averaged
    assert loss.loc["sam", "avg_final_loss"] == pytest.approx(0.2) and loss.loc["sam", "divergent_case"]
    assert ["digits", "sam", "3", "0.15", "0.2", "yes"] in [row[:6] for row in md_rows(tmp_path / "rep" / "loss_table.md")]


def test_figures_and_tables_are_byte_identical_on_a_second_call(study, tmp_path):
    first = _report([study], tmp_path / "a")
    _report([study], tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a").iterdir() if p.is_file())
    assert {f"digits_{k}.png" for k in ("accuracy", "loss", "reward", "precision_f1", "lr", "actions", "compute")} <= set(names)
    assert {"table.csv", "table.md", "table.tex", "loss_table.csv", "runs.csv", "problems.csv"} <= set(names)
    assert len(first["figures"]) == 7
    for name in names:
        if name.endswith((".png", ".csv", ".md", ".tex")):
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_method_names_come_from_the_overrides_that_vary(tmp_path):
    runs = [("sgd", 0, ("optim.sgd.lr=0.1", "trainer.epochs=3")), ("sgd", 1, ("optim.sgd.lr=0.1", "trainer.epochs=3")),
            ("sgd", 0, ("optim.sgd.lr=0.01", "trainer.epochs=3")), ("adam", 0, ("trainer.epochs=3", "trainer.device=cpu")),
            ("adam", 1, ("trainer.epochs=3",))]
    records = [{"dataset": "digits", "controller": c, "label": None,
                "overrides": dict(o.split("=") for o in (f"seed={s}", *over))} for c, s, over in runs]
    # seeds and the device never name a method; the lr grid does, for sgd only
    assert method_labels(records) == ["sgd optim.sgd.lr=0.1", "sgd optim.sgd.lr=0.1", "sgd optim.sgd.lr=0.01", "adam", "adam"]
    for i, (controller, seed, over) in enumerate(runs):
        make_run(tmp_path / "sweep", str(i), controller, seed, overrides=over)
    _report([tmp_path / "sweep"], tmp_path / "rep")
    table = pd.read_csv(tmp_path / "rep" / "table.csv")
    assert list(table["method"]) == ["adam", "sgd optim.sgd.lr=0.01", "sgd optim.sgd.lr=0.1"]
    assert list(table["n"]) == [2, 1, 2]


def test_an_explicit_label_names_the_method(tmp_path):
    make_run(tmp_path, "a", "sgd", 0, overrides=("optim.sgd.lr=0.1", "label=tuned_sgd"), label="tuned_sgd")
    make_run(tmp_path, "b", "sgd", 1, overrides=("optim.sgd.lr=0.2", "label=tuned_sgd"), label="tuned_sgd")
    _report([tmp_path], tmp_path / "rep")
    table = pd.read_csv(tmp_path / "rep" / "table.csv")
    assert list(table["method"]) == ["tuned_sgd"] and list(table["n"]) == [2]
    assert r"digits & tuned\_sgd & 2 &" in (tmp_path / "rep" / "table.tex").read_text()


def test_report_folders_and_missing_folders(study, tmp_path):
    # a report written inside the sweep holds .hydra/config.yaml too, but is not a run
    (study / "report_inside" / ".hydra").mkdir(parents=True)
    (study / "report_inside" / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"dirs": [], "out": "x"}))
    assert len(find_runs([study])) == 8 and len(find_runs([study, study / "3_sam"])) == 8
    with pytest.raises(UserError, match="nowhere is not a folder"):
        _report([tmp_path / "nowhere"], tmp_path / "rep")
