"""The algorithm-selection scorecard and the amortised-compute table on hand-made numbers."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from rlopt.reporting.amortised import amortised_table
from rlopt.reporting.scorecard import Scorecard, instance_scores
from rlopt.reporting.scorecard_plot import plot_scorecard

NOISE = [-0.01, 0.0, 0.0, 0.0, 0.01]  # five seeds whose IQM is the centre value
# instance -> part, method -> centre score. SBS on train: sgd. VBS on test: adam on C, sgd on D.
CENTRES = {
    ("A", "train"): {"sgd": 0.90, "adam": 0.80, "random": 0.10},
    ("B", "train"): {"sgd": 0.85, "adam": 0.80, "random": 0.10},
    ("C", "test"): {"sgd": 0.70, "adam": 0.90, "random": 0.10, "oracle": 0.90},
    ("D", "test"): {"sgd": 0.90, "adam": 0.60, "random": 0.10, "oracle": 0.90},
}
TYPES = {"sgd": "fixed", "adam": "fixed", "random": "random", "oracle": "frozen"}


def hand_made_runs() -> pd.DataFrame:
    rows = []
    for (instance, part), methods in CENTRES.items():
        for method, centre in methods.items():
            for seed, noise in enumerate(NOISE):
                rows.append({"instance": instance, "instance_part": part, "dataset": "digits", "method": method,
                             "controller_type": TYPES[method], "seed": seed, "status": "completed",
                             "test_acc": centre + noise, "test_loss": 1 - centre, "grad_evals": 100,
                             "total_grad_evals": 100, "tuning_grad_evals": 0, "policy": None, "run": f"{instance}/{method}"})
    return pd.DataFrame(rows)


def test_a_method_equal_to_the_vbs_closes_the_whole_gap_and_the_sbs_none():
    card = Scorecard(instance_scores(hand_made_runs()), low="random")
    assert card.sbs == "sgd"  # chosen on A and B only
    assert card.vbs_method == {"A": "sgd", "B": "sgd", "C": "adam", "D": "sgd"}
    gaps = card.gap_table(reps=500, seed=0).set_index("method")
    assert gaps.loc["oracle", "gap_closed"] == pytest.approx(1.0)
    assert gaps.loc["sgd", "gap_closed"] == pytest.approx(0.0)
    # adam: normalised 1 on C and (0.6-0.1)/0.8 on D; sgd 0.75 and 1 -> (0.8125 - 0.875) / 0.125
    assert gaps.loc["adam", "gap_closed"] == pytest.approx(-0.5)
    assert gaps.loc["oracle", "ci_low"] <= 1.0 <= gaps.loc["oracle", "ci_high"]
    assert gaps.loc["adam", "ci_low"] < -0.5 < gaps.loc["adam", "ci_high"]
    assert (gaps.loc["oracle", ["wins", "ties", "losses"]].tolist()) == [1, 1, 0]  # C: win, D: tie
    assert (gaps.loc["adam", ["wins", "ties", "losses"]].tolist()) == [1, 0, 1]


def test_the_sbs_never_looks_at_test_instances():
    runs = hand_made_runs()
    # adam made the best by far on the test instances: the SBS is still sgd, the best on train
    runs.loc[(runs["instance_part"] == "test") & (runs["method"] == "adam"), "test_acc"] += 0.05
    assert Scorecard(instance_scores(runs), low="random").sbs == "sgd"
    runs.loc[(runs["instance_part"] == "train") & (runs["method"] == "adam"), "test_acc"] += 0.2
    assert Scorecard(instance_scores(runs), low="random").sbs == "adam"


def test_without_train_instances_there_is_no_sbs():
    runs = hand_made_runs()
    card = Scorecard(instance_scores(runs[runs["instance_part"] == "test"]), low="random")
    assert card.sbs is None and card.gap_table(100, 0).empty


def test_break_even_instances_against_a_tuned_baseline(tmp_path):
    runs = hand_made_runs()
    learner = tmp_path / "learner"
    learner.mkdir()
    (learner / "summary.json").write_text('{"total_grad_evals": 12000}')
    runs.loc[runs["method"] == "oracle", "policy"] = str(learner / "policy.zip")
    runs.loc[runs["method"] == "adam", "tuning_grad_evals"] = 3000
    table = amortised_table(runs).set_index("method")
    row = table.loc["oracle"]
    assert row["learning_grad_evals"] == 12000 and row["deployments"] == 2
    assert row["per_deployment_grad_evals"] == 12000 / 2 + 100
    assert row["tuned_baseline"] == "adam"
    assert row["break_even_instances"] == pytest.approx(12000 / (3000 + 100 - 100))
    runs.loc[runs["method"] == "adam", "tuning_grad_evals"] = 0
    assert math.isnan(amortised_table(runs).loc[0, "tuning_grad_evals"])


def test_the_figure_is_written_as_png_and_pdf_with_truetype_fonts(tmp_path):
    card = Scorecard(instance_scores(hand_made_runs()), low="random")
    written = plot_scorecard(card, card.gap_table(reps=200, seed=0), tmp_path / "scorecard")
    assert [p.suffix for p in written] == [".png", ".pdf"]
    assert b"/FontFile2" in written[1].read_bytes() and b"/FontFile3" not in written[1].read_bytes()
