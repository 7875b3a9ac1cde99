"""`rlopt report` on hand-made run folders: exact statistics, method names, failures, determinism.

The folders hold what a run writes (.hydra/config.yaml, .hydra/overrides.yaml, summary.json,
metrics.csv) with known numbers, so every value in the tables can be checked without training.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import shutil
import subprocess
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest
import yaml
from hydra import compose, initialize_config_dir
from scipy.stats import trim_mean

from rlopt.errors import UserError
from rlopt.files import write_json
from rlopt.metrics import COLUMNS
from rlopt.paths import conf_dir
from rlopt.report import report
from rlopt.reporting.palette import FIXED, colours
from rlopt.reporting.ranks import rank_blocks
from rlopt.reporting.runs import find_runs, method_labels
from rlopt.reporting.runs_table import read_runs


def make_run(root: Path, name: str, controller: str = "sgd", seed: int = 0, status: str | None = "completed",
             overrides: tuple[str, ...] = (), label: str | None = None, dataset: str = "digits",
             acc: float | None = 0.9, final_loss: float = 0.3, epochs: int = 3, optimizers=("sgd",),
             reference: str | None = None) -> Path:
    """A run folder as `rlopt train` leaves it; status None = stopped before summary.json; acc None = a
    regression task (no accuracy, precision, recall or F1)."""
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    kind = "random" if controller == "random" else "sb3" if controller.startswith(("ppo", "dqn")) else "fixed"
    config = {"seed": seed, "label": label, "reference": reference, "dataset": {"name": dataset},
              "controller": {"name": controller, "type": kind}}
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (run / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump([f"controller={controller}", f"seed={seed}", *overrides]))
    per_step = 2 if controller == "sam" else 1
    rows = [{"episode": 0, "epoch": e, "step": e, "action": 0, "optimizer": optimizers[(e - 1) % len(optimizers)],
             "lr": 0.05 / e, "train_loss": 1.0 / e, "val_loss": final_loss * epochs / e,
             "val_acc": None if acc is None else acc * e / epochs, "val_precision": acc, "val_recall": acc, "val_f1": acc,
             "reward": 0.1 * e, "epoch_time_s": 0.5,
             "controller_time_s": 0.01, "grad_evals": 10 * per_step * e, "opt_steps": 10 * e, "grad_norm": 1.0,
             "diverged": False} for e in range(1, epochs + 1)]
    pd.DataFrame(rows, columns=COLUMNS).to_csv(run / "metrics.csv", index=False)
    if status == "failed":
        write_json(run / "summary.json", {"status": "failed", "error": "RuntimeError: boom at epoch 2"})
    elif status is not None:
        scores = {"test_acc": acc, "test_f1": acc - 0.01, "test_precision": acc - 0.02, "test_recall": acc - 0.03} \
            if acc is not None else {}
        write_json(run / "summary.json", {
            "status": status, "controller": controller, **scores, "test_loss": final_loss + 0.1,
            "converged_epoch": float(epochs - seed % 2), "grad_evals": rows[-1]["grad_evals"],
            # what producing the run cost: a tuned baseline's trials or an agent's learning runs on top
            "total_grad_evals": rows[-1]["grad_evals"] * (1 + seed),
            "wall_time_s": 1.5 + seed, "final_val_loss": math.inf if status == "diverged" else final_loss,
            "epoch_time_s": {"min": 0.4 + 0.1 * seed, "median": 0.5, "max": 0.6 + 0.1 * seed},
        })
    return run


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """sgd (3 seeds), sam (2 finished + 1 diverged + 1 failed), adam (only an incomplete run)."""
    sweep = tmp_path_factory.mktemp("study") / "sweep"
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


@pytest.fixture(scope="module")
def study_report(study, tmp_path_factory) -> Path:
    """The study's report with the default settings, made once for the tests that only read it."""
    out = tmp_path_factory.mktemp("study_report")
    _report([study], out)
    return out


def _report(dirs, out: Path, *overrides: str, figures: bool = True) -> dict:
    """`rlopt report DIRS out=OUT OVERRIDES`, in this process, with the composed report config; 2000 resamples
    unless told otherwise (the default, 50,000, takes a few seconds more). `figures=False`: the figures
    (rlopt.reporting.figures.plot_report, ~90% of a report's time) are not drawn, for the tests of what the tables
    say; the fixtures' reports and the figure tests draw them."""
    quick = [] if any(o.startswith("report.bootstrap.reps=") for o in overrides) else ["report.bootstrap.reps=2000"]
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        cfg = compose(config_name="report", overrides=[f"out={out}", *quick, *overrides])
    cfg.dirs = [str(d) for d in dirs]
    with mock.patch("rlopt.report.plot_report", return_value=[]) if not figures else contextlib.nullcontext():
        return report(cfg, out)


def test_table_numbers_are_the_statistics_of_the_summaries(study, study_report):
    table = pd.read_csv(study_report / "table.csv").set_index("method")
    assert list(table.index) == ["adam", "sam", "sgd"]
    for method, runs in {"sgd": ["0_sgd", "1_sgd", "2_sgd"], "sam": ["3_sam", "4_sam", "5_sam"]}.items():
        summaries = [json.loads((study / r / "summary.json").read_text()) for r in runs]
        for metric in ("test_acc", "test_f1", "test_precision", "test_recall", "converged_epoch", "grad_evals",
                       "total_grad_evals"):
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
    result = _report([study], tmp_path / "rep", "report.stat=mean_std", figures=False)
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


def test_loss_table_for_learning_rate_studies(study_report):
    loss = pd.read_csv(study_report / "loss_table.csv").set_index("method")
    assert loss.loc["sgd", "best_final_loss"] == pytest.approx(0.2)
    assert loss.loc["sgd", "avg_final_loss"] == pytest.approx(0.3)
    assert not loss.loc["sgd", "divergent_case"]
    # the diverged run's infinite loss is flagged, not averaged
    assert loss.loc["sam", "avg_final_loss"] == pytest.approx(0.2) and loss.loc["sam", "divergent_case"]
    assert ["digits", "sam", "3", "0.15", "0.2", "yes"] in [row[:6] for row in md_rows(study_report / "loss_table.md")]


def test_figures_and_tables_are_byte_identical_on_a_second_call(study, tmp_path):
    first = _report([study], tmp_path / "a")
    _report([study], tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a").iterdir() if p.is_file())
    stems = ("accuracy", "loss", "reward", "precision_f1", "lr", "actions", "compute", "profile")
    figures = {f"digits_{stem}.{fmt}" for stem in stems for fmt in ("png", "pdf")} | {"improvement.png", "improvement.pdf"}
    assert figures == {Path(f).name for f in first["figures"]} and figures <= set(names)
    tables = {f"{t}.{fmt}" for t in ("table", "loss_table", "improvement") for fmt in ("csv", "md", "tex")}
    assert tables | {"runs.csv", "problems.csv", "report.json"} <= set(names)
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert json.loads((tmp_path / "a" / "report.json").read_text())["bootstrap"]["reps"] == 2000


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
    _report([tmp_path / "sweep"], tmp_path / "rep", figures=False)
    table = pd.read_csv(tmp_path / "rep" / "table.csv")
    assert list(table["method"]) == ["adam", "sgd optim.sgd.lr=0.01", "sgd optim.sgd.lr=0.1"]
    assert list(table["n"]) == [2, 1, 2]


def test_an_explicit_label_names_the_method(tmp_path):
    make_run(tmp_path, "a", "sgd", 0, overrides=("optim.sgd.lr=0.1", "label=tuned_sgd"), label="tuned_sgd")
    make_run(tmp_path, "b", "sgd", 1, overrides=("optim.sgd.lr=0.2", "label=tuned_sgd"), label="tuned_sgd")
    _report([tmp_path], tmp_path / "rep", figures=False)
    table = pd.read_csv(tmp_path / "rep" / "table.csv")
    assert list(table["method"]) == ["tuned_sgd"] and list(table["n"]) == [2]
    assert r"digits & tuned\_sgd & 2 &" in (tmp_path / "rep" / "table.tex").read_text()


def test_report_folders_and_missing_folders(study, tmp_path):
    study = Path(shutil.copytree(study, tmp_path / "sweep"))
    # a report written inside the sweep holds .hydra/config.yaml too, but is not a run
    (study / "report_inside" / ".hydra").mkdir(parents=True)
    (study / "report_inside" / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"dirs": [], "out": "x"}))
    assert len(find_runs([study])) == 8 and len(find_runs([study, study / "3_sam"])) == 8
    with pytest.raises(UserError, match="nowhere is not a folder"):
        _report([tmp_path / "nowhere"], tmp_path / "rep")


# digits: four fixed baselines or agents with 5-6 seeds, one agent with 3; ppo_3opt beats every run of sam, the
# best fixed baseline. polynomial (regression, lower loss wins): sgd, sam and random with 5 seeds.
WIDE = {"sgd": (0.90, 6), "sam": (0.92, 6), "adam": (0.88, 6), "ppo_3opt": (0.98, 6), "random": (0.50, 5),
        "dqn_2opt": (0.93, 3)}
POLY = {"sgd": 0.30, "sam": 0.20, "random": 0.90}


@pytest.fixture(scope="module")
def wide(tmp_path_factory) -> tuple[Path, Path]:
    """(sweep, its report with the default settings)."""
    sweep = tmp_path_factory.mktemp("wide") / "sweep"
    for controller, (acc, seeds) in WIDE.items():
        for seed in range(seeds):
            spread = 0.0 if controller == "ppo_3opt" else 0.01 * seed
            make_run(sweep, f"digits_{controller}_{seed}", controller, seed, acc=acc + spread)
    for controller, loss in POLY.items():
        for seed in range(5):
            make_run(sweep, f"poly_{controller}_{seed}", controller, seed, dataset="polynomial", acc=None,
                     final_loss=loss + 0.01 * seed)
    out = tmp_path_factory.mktemp("wide_report")
    _report([sweep], out)
    return sweep, out


def test_iqm_cells_with_intervals_and_the_few_seeds_marker(wide):
    _, out = wide
    table = pd.read_csv(out / "table.csv").query("dataset == 'digits'").set_index("method")
    cells = {row[1]: row for row in md_rows(out / "table.md") if row[0] == "digits"}
    accs = np.array([0.90 + 0.01 * seed for seed in range(6)])
    sgd = table.loc["sgd"]
    assert sgd["test_acc_iqm"] == pytest.approx(trim_mean(accs, 0.25), abs=1e-12)
    assert sgd["test_acc_ci_low"] <= sgd["test_acc_iqm"] <= sgd["test_acc_ci_high"]
    assert sgd["test_acc_ci_low"] < sgd["test_acc_ci_high"]
    assert cells["sgd"][3] == f"{100 * sgd['test_acc_iqm']:.2f} [{100 * sgd['test_acc_ci_low']:.2f}, " \
                              f"{100 * sgd['test_acc_ci_high']:.2f}]"
    # three seeds: the IQM and the marker, no interval from three numbers; the caption says why
    assert math.isnan(table.loc["dqn_2opt", "test_acc_ci_low"]) and table.loc["dqn_2opt", "n"] == 3
    assert cells["dqn_2opt"][3] == f"{100 * trim_mean([0.93, 0.94, 0.95], 0.25):.2f} †"
    md = (out / "table.md").read_text()
    assert "† fewer than 5 runs" in md and "2000 resamples, seed 0" in md
    assert "†" not in cells["sgd"][3] and "†" not in "".join(cells["random"])


def test_probability_of_improvement_over_the_best_fixed_baseline(wide):
    _, out = wide
    improvement = pd.read_csv(out / "improvement.csv").set_index(["dataset", "method"])
    assert set(improvement["reference"]) == {"sam"}  # ppo_3opt is better, but sam is the best fixed baseline
    assert improvement.loc[("digits", "ppo_3opt"), ["p_improvement", "ci_low", "ci_high"]].tolist() == [1.0, 1.0, 1.0]
    assert improvement.loc[("digits", "random"), "p_improvement"] == 0.0
    itself = improvement.loc[("digits", "sam")]
    assert itself["p_improvement"] == 0.5 and itself["ci_low"] < 0.5 < itself["ci_high"]
    assert math.isnan(improvement.loc[("digits", "dqn_2opt"), "ci_low"])
    # regression: the lower loss wins
    assert improvement.loc[("polynomial", "sgd"), "p_improvement"] == 0.0
    assert improvement.loc[("polynomial", "random"), "p_improvement"] == 0.0
    md = (out / "improvement.md").read_text()
    assert "polynomial: test loss (lower is better)" in md and "the fixed baseline with the highest IQM" in md


def test_aggregate_over_datasets_is_normalised_and_says_how(wide):
    _, out = wide
    aggregate = pd.read_csv(out / "aggregate.csv").set_index("method")
    assert aggregate.loc["sam", "datasets"] == 2 and aggregate.loc["ppo_3opt", "datasets"] == 1
    assert aggregate.loc["random", "normalised_iqm"] == pytest.approx(0.0, abs=0.05)
    assert aggregate.loc["sam", "normalised_iqm"] == pytest.approx(1.0, abs=0.05)
    record = json.loads((out / "report.json").read_text())
    assert record["reference"] == {"digits": "sam", "polynomial": "sam"}
    assert record["normalisation"]["polynomial"]["low_from"] == "IQM of random"
    assert "0 = IQM of random" in (out / "aggregate.md").read_text()
    assert {"all_profile.png", "all_profile.pdf", "polynomial_profile.pdf"} <= {p.name for p in out.iterdir()}


def test_latex_tables_are_booktabs_tabulars(wide):
    _, out = wide
    for name in ("table", "improvement", "aggregate", "loss_table"):
        tex = (out / f"{name}.tex").read_text()
        body = [line for line in tex.splitlines() if not line.startswith("%")]
        assert body[0].startswith(r"\begin{tabular}{") and body[-1] == r"\end{tabular}"
        assert body[1] == r"\toprule" and r"\midrule" in body and body[-2] == r"\bottomrule"
        width = len(md_rows(out / f"{name}.md")[0])
        rows = body[2:body.index(r"\midrule")] + body[body.index(r"\midrule") + 1:-2]
        assert all(row.endswith(r"\\") and len(re.findall(r"(?<!\\)&", row)) == width - 1 for row in rows), name
        assert "†" not in tex and "±" not in tex


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed (the structure test still runs)")
def test_latex_tables_compile(wide, tmp_path):
    _, out = wide
    (tmp_path / "doc.tex").write_text("\\documentclass{article}\\usepackage{booktabs}\\begin{document}\n"
                                      + "".join(f"\\input{{{out / n}.tex}}\n" for n in ("table", "improvement", "aggregate"))
                                      + "\\end{document}\n")
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "doc.tex"], cwd=tmp_path, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout[-2000:]


def test_settings_are_recorded_and_a_named_reference_is_used(wide, tmp_path):
    sweep, out = wide
    _report([sweep], tmp_path / "rep", "report.reference=sgd", "report.bootstrap.seed=1", "report.bootstrap.reps=500",
            figures=False)
    record = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert record["bootstrap"]["seed"] == 1 and record["bootstrap"]["reps"] == 500
    assert set(pd.read_csv(tmp_path / "rep" / "improvement.csv")["reference"]) == {"sgd"}
    before, after = (pd.read_csv(d / "table.csv").set_index(["dataset", "method"]) for d in (out, tmp_path / "rep"))
    assert before["test_acc_iqm"].equals(after["test_acc_iqm"])  # the estimate does not depend on the bootstrap
    assert not before["test_acc_ci_low"].equals(after["test_acc_ci_low"])  # its interval does, through seed and reps
    assert "500 resamples, seed 1" in (tmp_path / "rep" / "table.md").read_text()


@pytest.mark.parametrize("override, message", [
    ("report.reference=nope", "report.reference=nope: no finished runs of that method; available: adam, dqn_2opt"),
    ("report.bootstrap.reps=0", "report.bootstrap.reps=0 is not allowed: use a positive integer"),
    ("report.bootstrap.seed=-1", "report.bootstrap.seed=-1 is not allowed: use a non-negative integer"),
])
def test_bad_report_settings_are_one_line(wide, tmp_path, override, message):
    with pytest.raises(UserError, match=re.escape(message)):
        _report([wide[0]], tmp_path / "rep", override)


def test_an_unknown_statistic_fails_at_composition(cli_inproc, tmp_path):
    result = cli_inproc("report", str(tmp_path), "report.stat=median", cwd=tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("rlopt report: error: report.stat=median is not allowed"), lines[0]


def test_tables_are_a_function_of_runs_csv(wide, tmp_path):
    """A report from the runs.csv alone (no run folders) writes the same tables, byte for byte."""
    _, out = wide
    runs = pd.read_csv(out / "runs.csv")
    assert {"instance", "declared_reference", "grad_evals", "total_grad_evals", "test_acc", "test_loss"} <= set(runs)
    assert len(runs) == sum(seeds for _, seeds in WIDE.values()) + 5 * len(POLY)
    alone = Path(shutil.copy(out / "runs.csv", tmp_path / "kept.csv"))
    _report([], tmp_path / "again", f"runs_csv={alone}")
    for name in ("runs.csv", "table.md", "table.csv", "improvement.md", "aggregate.md", "loss_table.md"):
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes(), name
    assert (tmp_path / "again" / "improvement.png").is_file()  # the comparison figures need only the scores
    with pytest.raises(UserError, match="runs_csv=.*no such file"):
        _report([], tmp_path / "none", f"runs_csv={tmp_path / 'missing.csv'}")


def test_the_reference_declared_before_the_runs_is_used(tmp_path):
    sweep = tmp_path / "sweep"
    for controller, acc in (("sgd", 0.90), ("adam", 0.85)):
        for seed in range(5):
            make_run(sweep, f"{controller}_{seed}", controller, seed, acc=acc + 0.01 * seed, reference="adam")
    _report([sweep], tmp_path / "rep", figures=False)
    improvement = pd.read_csv(tmp_path / "rep" / "improvement.csv")
    assert set(improvement["reference"]) == {"adam"}  # not sgd, the better one: it was declared before
    assert "declared by the study before its runs" in (tmp_path / "rep" / "improvement.md").read_text()
    make_run(sweep, "sgd_9", "sgd", 9, reference="sgd")
    with pytest.raises(UserError, match=re.escape("the runs declare different references (adam, sgd)")):
        _report([sweep], tmp_path / "rep2", figures=False)


def test_ranks_and_critical_difference_over_datasets(tmp_path):
    """3 methods x 2 datasets x 5 seeds: autorank's mean ranks (1 = best) and a CD diagram."""
    sweep = tmp_path / "sweep"
    for dataset in ("digits", "iris"):
        for controller, acc in (("sgd", 0.80), ("sam", 0.90), ("adam", 0.85)):
            for seed in range(5):
                make_run(sweep, f"{dataset}_{controller}_{seed}", controller, seed, dataset=dataset,
                         acc=acc + 0.001 * seed)
    _report([sweep], tmp_path / "rep")
    ranks = pd.read_csv(tmp_path / "rep" / "ranks.csv").set_index("method")
    assert ranks["mean_rank"].to_dict() == {"sam": 1.0, "adam": 2.0, "sgd": 3.0}  # sam wins every block
    assert "Friedman test p = " in (tmp_path / "rep" / "ranks.md").read_text()
    assert (tmp_path / "rep" / "ranks_cd.png").is_file()
    runs = read_runs(tmp_path / "rep" / "runs.csv")
    assert rank_blocks(runs[runs["dataset"] == "digits"]) is None  # one dataset: no rank table
    assert rank_blocks(runs[runs["method"] != "adam"]) is None  # two methods: none either


def test_a_method_keeps_its_colour_in_every_figure():
    """One palette: a shipped method or optimizer has its fixed colour whatever else is drawn; another name a
    colour that does not depend on the other names unless two collide; no two names of a figure share one."""
    small, large = colours(["adam", "sgd", "my_label"]), colours(["adam", "sgd", "sam", "prodigy", "my_label", "x y"])
    assert small["adam"] == large["adam"] == FIXED["adam"] and small["sgd"] == FIXED["sgd"]
    assert small["my_label"] == large["my_label"]
    many = colours([f"method {i}" for i in range(12)] + ["adam"])
    assert len(set(many.values())) == len(many)
