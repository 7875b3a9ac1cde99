"""The heuristic baselines through the same loop: late_sam (SGD, then SAM late) and sam_every_k; and the SAM arms
as fixed controllers, each charged its true gradient evaluations in metrics.csv, the composite reward and summary."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import make_cfg
from rlopt.controllers import build_controller
from rlopt.env import make_env
from rlopt.errors import UserError
from rlopt.train import train

STEPS = "trainer.max_steps=12"  # 3 decision steps of 4 optimizer steps each
PER_DECISION = "env.steps_per_action=4"


def test_late_sam_takes_sam_for_the_last_fraction_of_the_decision_steps(tmp_path):
    summary = train(make_cfg("controller=late_sam", "controller.fraction=0.34", STEPS, PER_DECISION), tmp_path)
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert list(df["optimizer"]) == ["sgd", "sgd", "sam"]  # round(0.34 x 3) = 1 late decision step
    assert list(df["grad_evals"]) == [4, 8, 16] and summary["grad_evals"] == 16


def test_late_sam_takes_at_least_one_late_step_and_accepts_another_pair(tmp_path):
    summary = train(make_cfg("controller=late_sam", "controller.actions.choices=[adam,looksam]",
                             "optim.looksam.k=2", STEPS, PER_DECISION), tmp_path)  # 0.125 x 3 rounds to 0: one anyway
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert list(df["optimizer"]) == ["adam", "adam", "looksam"]
    assert list(df["grad_evals"]) == [4, 8, 8 + 4 + 2] and summary["status"] == "completed"


@pytest.mark.parametrize("overrides, message", [
    (["controller.fraction=0"], "controller.fraction=0.0 is not allowed: use a number in (0, 1]"),
    (["controller.fraction=1.5"], "controller.fraction=1.5 is not allowed"),
    (["controller.actions.choices=[sgd,sam,adam]"], "controller.actions.choices is not allowed with late_sam"),
])
def test_late_sam_bad_input_is_one_line_naming_the_key(overrides, message):
    cfg = make_cfg("controller=late_sam", *overrides)
    with pytest.raises(UserError) as err:
        build_controller(cfg.controller, 0).setup(make_env(cfg), None, None)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("controller, k, evals", [
    ("sam_every_k", 3, [4 + 2, 8 + 3, 12 + 4]),  # SAM on steps 0, 3, 6, 9: 2 each, the others 1
    ("looksam", 5, [4 + 1, 8 + 2, 12 + 3]),  # recomputes on steps 0, 5, 10
])
def test_the_partial_sam_arms_are_charged_their_true_gradient_evaluations(tmp_path, controller, k, evals):
    summary = train(make_cfg(f"controller={controller}", f"optim.{controller}.k={k}", STEPS, PER_DECISION,
                             "reward=composite"), tmp_path)
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert list(df["grad_evals"]) == evals and summary["grad_evals"] == evals[-1]
    assert df["val_loss"].iloc[-1] < df["val_loss"].iloc[0]


@pytest.mark.parametrize("controller", ["asam", "gsam"])
def test_the_two_pass_arms_run_as_fixed_controllers_at_two_evaluations_per_step(tmp_path, controller):
    train(make_cfg(f"controller={controller}", STEPS, PER_DECISION), tmp_path)
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert set(df["optimizer"]) == {controller} and list(df["grad_evals"]) == [8, 16, 24]
