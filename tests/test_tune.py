"""`rlopt tune`: trials through the training loop, pruning, resume after kill -9, shared studies, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pandas as pd
import pytest
from optuna.distributions import FloatDistribution

from conftest import REPO, make_cfg
from rlopt.errors import RunInterrupted, UserError
from rlopt.train import train
from rlopt.tune import objective, open_storage, tune
from rlopt.tune.space import validate_tune

# 3 decisions per trial (one per epoch) on a slice of digits; reduction_factor 3 prunes at decision 1.
TINY_TUNE = ["+debug=tiny", "trainer.epochs=3"]


def _trials(folder):
    return pd.read_csv(folder / "trials.csv")


def test_agent_total_grad_evals_counts_its_learning_runs(tmp_path):
    summary = train(make_cfg("controller=ppo_lr", "controller.episodes=1"), tmp_path)
    # one learning run and the final run, both Adam over the same budget
    assert summary["total_grad_evals"] == 2 * summary["grad_evals"] > 0
    assert summary["tuning_grad_evals"] == 0 and summary["tuning_trials"] == 0


def test_four_trial_tune_prunes_completes_and_runs_the_best_config(cli_inproc, tmp_path):
    result = cli_inproc("tune", *TINY_TUNE, "tune.n_trials=4", "final=true", "tune.final_seeds=[5]",
                        "hydra.run.dir=t", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    tmp_path = tmp_path / "t"
    info = json.loads((tmp_path / "tune.json").read_text())
    trials = _trials(tmp_path)
    assert len(trials) == 4 and set(trials["state"]) == {"complete", "pruned"}
    for row in trials.itertuples():
        run = tmp_path / row.run
        metrics = pd.read_csv(run / "metrics.csv")
        assert not list(run.glob("*.png")) and not (run / "checkpoint.pt").exists()  # compact: no plots, no checkpoint
        assert row.grad_evals == metrics["grad_evals"].iloc[-1]
        assert row.value == pytest.approx(metrics["val_loss"].iloc[-1])  # the last decision's validation loss
        assert json.loads((run / "summary.json").read_text())["status"] == ("completed" if row.state == "complete" else "pruned")
        assert len(metrics) == (3 if row.state == "complete" else row.last_step)
    best = trials[trials["state"] == "complete"].sort_values("value").iloc[0]
    assert info["best"]["number"] == best["number"]
    assert info["tuning_grad_evals"] == trials["grad_evals"].sum() and info["tuning_trials"] == 4
    line = (tmp_path / "best_overrides.txt").read_text().split()
    assert f"controller.lr={best['param.controller.lr']}" in line and "+debug=tiny" in line
    assert f"tuning.grad_evals={info['tuning_grad_evals']}" in line
    composed = make_cfg(*line, tiny=False)  # the line composes as rlopt train overrides: the trial's config again
    assert composed.controller.lr == best["param.controller.lr"] and composed.controller.type == "schedule"
    assert composed.tuning.grad_evals == info["tuning_grad_evals"] and composed.trainer.epochs == 3
    final = json.loads((tmp_path / "final" / "s5" / "summary.json").read_text())
    assert final["seed"] == 5 and final["tuning_grad_evals"] == info["tuning_grad_evals"] and final["tuning_trials"] == 4
    assert final["total_grad_evals"] == final["grad_evals"] + info["tuning_grad_evals"]
    assert "test_loss" not in (tmp_path / "trials.csv").read_text() + (tmp_path / "tune.json").read_text()


def test_budget_in_grad_evals_stops_the_study_and_is_recorded(cli_inproc, tmp_path):
    first = cli_inproc("tune", *TINY_TUNE, "tune.n_trials=4", "tune.budget_grad_evals=1", "hydra.run.dir=t", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    folder = tmp_path / "t"
    one_run = int(_trials(folder)["grad_evals"].iloc[0])
    assert len(_trials(folder)) == 1 and one_run >= 1  # the first trial spent the budget: no second one started
    # a larger budget on resume: trials start while spent < budget, and none is cut short
    again = cli_inproc("tune", f"resume={folder}", f"tune.budget_grad_evals={one_run + 1}", "final=true",
                       "tune.final_seeds=[0]", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    trials, info = _trials(folder), json.loads((folder / "tune.json").read_text())
    spent = int(trials["grad_evals"].sum())
    assert len(trials) == 2 and one_run + 1 <= spent <= 2 * one_run
    assert info["tuning_grad_evals"] == spent and info["budget_grad_evals"] == one_run + 1
    final = json.loads((folder / "final" / "s0" / "summary.json").read_text())
    assert final["tuning_grad_evals"] == spent and final["total_grad_evals"] == final["grad_evals"] + spent


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the test asks a trial by hand, outside optimize
def test_a_silent_worker_elsewhere_has_its_trial_failed_and_repeated(tmp_path):
    cfg = make_cfg("tune.n_trials=1", "tune.heartbeat.interval=1", "tune.heartbeat.grace=2", config="tune")
    storage = open_storage(cfg, tmp_path)
    study = optuna.create_study(storage=storage, study_name="rlopt", direction="minimize")
    lost = study.ask({"controller.lr": FloatDistribution(1e-5, 1.0, log=True)})
    lost.set_user_attr("host", "another-node")  # its worker died there: only the heartbeat can tell
    storage.record_heartbeat(lost._trial_id)
    time.sleep(3.5)  # > grace + 1 s: SQLite keeps the heartbeat time in whole seconds
    tune(cfg, tmp_path)
    trials = _trials(tmp_path).set_index("number")
    assert trials.loc[0, "state"] == "failed" and trials.loc[1, "retry_of"] == 0 and trials.loc[1, "state"] == "complete"
    assert trials.loc[1, "param.controller.lr"] == lost.params["controller.lr"]


@pytest.mark.parametrize("override, named", [
    ("+tune.space.controller.nope={low:1,high:2}", "tune.space.controller.nope"),
    ("tune.space.controller.lr.low=2", "low=2 >= high"),
    ("tune.n_trials=0", "tune.n_trials=0"),
    ("tune.storage=sqlite:////nonexistent/folder/study.db", "tune.storage="),
    ("tune.metric=accuracy", "tune.metric=accuracy"),
    ("tune.budget_grad_evals=0", "tune.budget_grad_evals=0"),
])
def test_bad_input_is_one_line_and_exit_2(cli_inproc, tmp_path, override, named):
    result = cli_inproc("tune", override, "hydra.run.dir=t", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and named in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "t" / "trials").exists()


def _tune_process(tmp_path, *args):
    return subprocess.Popen([sys.executable, "-m", "rlopt", "tune", *args], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.slow
def test_tune_resumes_after_kill_9_without_repeating_finished_trials(tmp_path, cli_inproc):
    # 12 decisions per trial; the kill lands as trial 1 starts its run (its config is written just before)
    args = [*TINY_TUNE, "tune.n_trials=3", "env.steps_per_action=1", "hydra.run.dir=t"]
    proc = _tune_process(tmp_path, *args)
    second = tmp_path / "t" / "trials" / "0001" / "config.yaml"
    deadline = time.time() + 240
    while not second.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    folder = tmp_path / "t"
    study = optuna.load_study(study_name="rlopt", storage=f"sqlite:///{folder / 'study.db'}")
    before = {t.number: t for t in study.trials}
    assert before[0].state.name == "COMPLETE" and before[1].state.name == "RUNNING"
    first_metrics = (folder / "trials" / "0000" / "metrics.csv").read_text()

    result = cli_inproc("tune", "resume=t", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    trials = _trials(folder).set_index("number")
    assert trials.loc[1, "state"] == "failed"
    retry = trials[trials["retry_of"] == 1]
    assert len(retry) == 1 and retry["param.controller.lr"].iloc[0] == trials.loc[1, "param.controller.lr"]
    assert trials["state"].isin(["complete", "pruned"]).sum() == 3
    assert trials["param.controller.lr"].tolist().count(trials.loc[0, "param.controller.lr"]) == 1  # trial 0 not redone
    assert (folder / "trials" / "0000" / "metrics.csv").read_text() == first_metrics
    assert json.loads((folder / "tune.json").read_text())["tuning_grad_evals"] == trials["grad_evals"].sum()


@pytest.mark.slow
def test_two_workers_on_one_sqlite_study_run_distinct_trials(tmp_path):
    args = [*TINY_TUNE, "tune.n_trials=4", "tune.dir=shared"]
    workers = [_tune_process(tmp_path, *args, f"tune.worker={i}", f"hydra.run.dir=w{i}") for i in range(2)]
    for worker in workers:
        assert worker.wait(timeout=300) == 0, worker.stderr.read()
    trials = _trials(tmp_path / "shared")
    assert trials["worker"].nunique() == 2  # both ran trials of the one study
    # no trial ran twice; at most one beyond n_trials when both workers ask at the very same moment
    assert 4 <= trials["state"].isin(["complete", "pruned"]).sum() == len(trials) <= 5
    assert trials["param.controller.lr"].nunique() == len(trials) == trials["run"].nunique()


@pytest.mark.parametrize("controller, key", [("sgd", "optim.sgd.lr"), ("adam", "optim.adam.lr"),
                                             ("schedule", "controller.lr"), ("cosine_adam", "controller.lr")])
def test_the_default_space_tunes_the_baselines_own_lr(controller, key):
    space = validate_tune(make_cfg(f"controller={controller}", config="tune"))
    assert list(space) == [key]


def test_tune_of_a_fixed_optimizer_runs_into_a_folder_named_for_it(cli_inproc, tmp_path):
    result = cli_inproc("tune", "controller=sgd", *TINY_TUNE, "trainer.epochs=1", "tune.n_trials=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    folder, = (tmp_path / "outputs" / "tune").iterdir()
    assert folder.name.endswith("_digits_sgd")
    assert " controller=sgd " in f" {(folder / 'best_overrides.txt').read_text()}" and "optim.sgd.lr=" in (
        folder / "best_overrides.txt").read_text()


@pytest.mark.parametrize("overrides, rejected, suggested", [
    (["+tune.space.controller.nope={low:1,high:2}"], "controller.nope", "controller.lr"),
    (["controller=ppo_lr"], "controller.lr", "trainer.batch_size"),
])
def test_a_bad_space_key_is_refused_with_another_key_as_example(overrides, rejected, suggested):
    with pytest.raises(UserError) as refused:
        validate_tune(make_cfg(*overrides, config="tune"))
    assert f"{rejected} is not a key" in str(refused.value) and str(refused.value).endswith(f"(e.g. tune.space.{suggested})")


def test_ctrl_c_in_a_trial_names_the_tune_folder_to_continue(cli_inproc, tmp_path, monkeypatch):
    def interrupted(cfg, run_dir, make_controller, observers=()):
        err = RunInterrupted(signal.SIGINT)
        err.step, err.run_dir = 1, run_dir  # as the run lifecycle raises it: the trial's own folder
        raise err

    monkeypatch.setattr(objective, "run_experiment", interrupted)
    result = cli_inproc("tune", *TINY_TUNE, "tune.n_trials=2", "hydra.run.dir=t", cwd=tmp_path)
    assert result.returncode == 130
    assert result.stderr.strip() == f"rlopt tune: interrupted at step 1; continue with: rlopt tune resume={tmp_path / 't'}"
    study = optuna.load_study(study_name="rlopt", storage=f"sqlite:///{tmp_path / 't' / 'study.db'}")
    assert [t.state.name for t in study.trials] == ["RUNNING"]  # what resume fails and repeats, as a dead worker's
