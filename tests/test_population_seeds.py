"""`runs=K controller.vectorize=population`: the K seeds of a baseline (`rlopt train`) or a frozen policy (`rlopt
evaluate`) as one population, each seed's folder what its own run writes; what it refuses, in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import call_cli, make_cfg
from rlopt.evaluate import evaluate
from rlopt.reporting.runs import find_runs
from rlopt.run.folder import config_values, differing_keys
from rlopt.train import train
from test_parallel import TIMING
from test_reliability import _kill_after_rows

POPULATION = ["controller.vectorize=population"]
DIGITS = ["dataset=digits", "model=mlp", "trainer.threads=1", "trainer.amp=false"]  # fp32: bf16 rounds far more
# compared to the float's rounding (tests/test_population.py: about 1e-6 on these tasks); a reward is a difference
# of losses, so it is compared on the losses' scale
FLOATS = ["lr", "train_loss", "val_loss", "reward", "grad_norm"]
SUMMARY_TIMES = ("wall_time_s", "epoch_time_s", "controller_time_s", "controller_time_share", "checkpoint_time_s")


def files(run: Path) -> set[str]:
    """What a run folder holds (TensorBoard's event file names carry the time and pid)."""
    return {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file() and "tfevents" not in p.name}


def assert_same_run(got: Path, want: Path, aside: tuple[str, ...] = ()) -> None:
    """`got` (a population member's folder) holds what `want` (its seed's own run, here outside Hydra: without the
    `.hydra/overrides.yaml` a command writes) holds: the same files, rows (timing aside; losses within float32
    rounding) and summary; `aside`: columns and summary keys not compared."""
    assert files(got) == files(want) | {".hydra/overrides.yaml"}  # got's: the command's, with its seed
    rows, single = (pd.read_csv(run / "metrics.csv").drop(columns=[*TIMING, *aside], errors="ignore") for run in (got, want))
    floats = [c for c in FLOATS if c not in aside]
    pd.testing.assert_frame_equal(rows.drop(columns=floats), single.drop(columns=floats))
    pd.testing.assert_frame_equal(rows[floats], single[floats], rtol=1e-5, atol=1e-6)
    summary, alone = (json.loads((run / "summary.json").read_text()) for run in (got, want))
    assert summary.keys() == alone.keys()
    for key, value in alone.items():
        if key in SUMMARY_TIMES or key in aside:
            continue
        if isinstance(value, float):
            assert summary[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
        else:
            assert summary[key] == value, key


def test_k_seeds_of_a_baseline_train_as_one_population_each_folder_its_own_runs(tmp_path):
    """controller=random: each member draws its own optimizer (SGD, SAM, Adam) every step from its seed."""
    args = [*DIGITS, "controller=random", "trainer.epochs=3"]
    summaries = train(make_cfg(*args, "runs=3", "seed=5", *POPULATION), tmp_path / "pop")
    assert [s["seed"] for s in summaries] == [5, 6, 7] and all(s["status"] == "completed" for s in summaries)
    chosen = set()
    for i, seed in enumerate([5, 6, 7]):
        train(make_cfg(*args, f"seed={seed}"), tmp_path / f"alone_s{seed}")
        member = tmp_path / "pop" / f"run{i}_s{seed}"
        assert_same_run(member, tmp_path / f"alone_s{seed}")
        chosen |= {(i, name) for name in pd.read_csv(member / "metrics.csv")["optimizer"]}
        config = (member / ".hydra" / "config.yaml").read_text()
        assert f"seed: {seed}\n" in config and "runs: 1\n" in config
    assert {name for _, name in chosen} == {"sgd", "sam", "adam"} and len(chosen) > 3  # and some member switched
    assert sorted(p.name for p in find_runs([tmp_path / "pop"])) == ["run0_s5", "run1_s6", "run2_s7"]


@pytest.mark.parametrize("controller", [["controller=schedule", "controller.optimizer=sgd", "controller.lr=0.05"],
                                        ["controller=late_sam", "env.steps_per_action=3"]])
def test_a_constant_schedule_and_late_sam_train_their_seeds_as_one_population(tmp_path, controller):
    args = ["dataset=polynomial", "trainer.threads=1", *controller]
    train(make_cfg(*args, "runs=2", "seed=1", *POPULATION), tmp_path / "pop")
    for i, seed in enumerate([1, 2]):
        train(make_cfg(*args, f"seed={seed}"), tmp_path / f"alone_s{seed}")
        assert_same_run(tmp_path / "pop" / f"run{i}_s{seed}", tmp_path / f"alone_s{seed}")


def test_a_member_that_diverges_ends_there_and_the_others_go_on(tmp_path):
    """SGD at lr 6 on polynomial: seed 1 diverges at its 4th step, seeds 0 and 2 complete their 10."""
    args = ["dataset=polynomial", "controller=sgd", "optim.sgd.lr=6.0", "env.steps_per_action=1", "trainer.epochs=5",
            "trainer.threads=1"]
    summaries = train(make_cfg(*args, "runs=3", *POPULATION), tmp_path / "pop")
    assert [(s["status"], s["steps"]) for s in summaries] == [("completed", 10), ("diverged", 4), ("completed", 10)]
    for i in (0, 1):
        train(make_cfg(*args, f"seed={i}"), tmp_path / f"alone_s{i}")
        # rewards too: the divergence penalty draws from the env's generator, seeded by the run seed
        assert_same_run(tmp_path / "pop" / f"run{i}_s{i}", tmp_path / f"alone_s{i}", aside=())


@pytest.mark.slow
def test_a_baselines_seeds_as_processes_and_as_one_population_write_the_same_runs(tmp_path):
    args = ["dataset=polynomial", "controller=adam", "runs=2", "seed=3", "trainer.threads=1"]
    for vectorize in ("processes", "population"):
        assert call_cli("train", "+debug=tiny", *args, f"controller.vectorize={vectorize}", f"hydra.run.dir={vectorize}",
                        cwd=tmp_path).returncode == 0
    for i, seed in enumerate([3, 4]):
        got, want = (tmp_path / vectorize / f"run{i}_s{seed}" for vectorize in ("population", "processes"))
        assert_same_run(got, want, aside=())
        overrides = (got / ".hydra" / "overrides.yaml").read_text()
        assert overrides == (want / ".hydra" / "overrides.yaml").read_text().replace("processes", "population")


@pytest.mark.slow
def test_sigkill_while_a_population_of_seeds_trains_then_rerun_equals_the_uninterrupted_runs(tmp_path):
    args = ["+debug=tiny", "dataset=polynomial", "controller=adam", "runs=3", *POPULATION, "trainer.threads=1",
            "trainer.epochs=60", "env.steps_per_action=1"]
    assert call_cli("train", *args, "hydra.run.dir=ref", cwd=tmp_path).returncode == 0
    _kill_after_rows([*args, "hydra.run.dir=run"], tmp_path, tmp_path / "run" / "run0_s0" / "metrics.csv", rows=20)
    assert not (tmp_path / "run" / "run0_s0" / "summary.json").exists()
    done = call_cli("train", *args, "hydra.run.dir=run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for i in range(3):
        assert_same_run(tmp_path / "run" / f"run{i}_s{i}", tmp_path / "ref" / f"run{i}_s{i}")


def test_rerunning_a_population_trains_only_the_seeds_that_did_not_finish(tmp_path):
    """A population writes no checkpoint: a member interrupted mid-run starts over (one left: as a single run), the
    finished ones stay."""
    cfg = make_cfg("dataset=polynomial", "controller=adam", "runs=3", *POPULATION)
    first = train(cfg, tmp_path)
    finished = {i: (tmp_path / f"run{i}_s{i}" / "summary.json").stat().st_mtime_ns for i in (0, 2)}
    (tmp_path / "run1_s1" / "summary.json").unlink()  # as a kill -9 leaves an unfinished member
    rows = (tmp_path / "run1_s1" / "metrics.csv").read_text().splitlines()
    (tmp_path / "run1_s1" / "metrics.csv").write_text("\n".join(rows[:2]) + "\n")
    again = train(cfg, tmp_path)
    assert {i: (tmp_path / f"run{i}_s{i}" / "summary.json").stat().st_mtime_ns for i in (0, 2)} == finished
    assert again[1]["test_loss"] == pytest.approx(first[1]["test_loss"], rel=1e-6)
    assert len(pd.read_csv(tmp_path / "run1_s1" / "metrics.csv")) == len(rows) - 1
    assert "seed: 1\n" in (tmp_path / "run1_s1" / ".hydra" / "config.yaml").read_text()


def test_evaluate_runs_k_as_one_population_writes_each_seeds_own_run(tmp_path, trained_run):
    policy = trained_run("ppo_2opt") / "policy.zip"  # discrete: SGD or SAM per step
    args = [f"policy={policy}", *DIGITS]
    summaries = evaluate(make_cfg(*args, "runs=2", "seed=3", *POPULATION, config="evaluate"), tmp_path / "pop")
    assert [s["seed"] for s in summaries] == [3, 4]
    for i, seed in enumerate([3, 4]):
        evaluate(make_cfg(*args, f"seed={seed}", config="evaluate"), tmp_path / f"alone_s{seed}")
        assert_same_run(tmp_path / "pop" / f"run{i}_s{seed}", tmp_path / f"alone_s{seed}")
        assert summaries[i]["policy"] == str(policy)


@pytest.mark.parametrize(("overrides", "refused"), [
    (["runs=0"], "runs=0 is not allowed"),
    (["runs=-2"], "runs=-2 is not allowed"),
    (["runs=abc"], "runs"),
    (["runs=2", "controller=ppo_lr"], "controller=ppo_lr is not allowed with runs=2 controller.vectorize=population"),
    (["runs=2", "controller=schedule", "controller.schedule=cosine"], "controller.schedule=cosine is not allowed"),
    (["runs=2", "controller=adadelta"], "optimizer adadelta is not allowed in population mode"),
    (["runs=2", "controller=sgd", "model=small_cnn"], "model=small_cnn is not allowed in population mode"),
    (["runs=2", "controller=adam", "instances=poly_family"], "runs=2 is not allowed with instances=poly_family"),
])
def test_what_population_mode_cannot_run_is_one_line_and_leaves_no_folder(tmp_path, overrides, refused):
    done = call_cli("train", "+debug=tiny", "dataset=digits", *POPULATION, *overrides, "hydra.run.dir=out",
                    cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and refused in lines[0], done.stderr
    assert not (tmp_path / "out").exists()


def test_tune_runs_one_run_per_trial(tmp_path):
    done = call_cli("tune", "+debug=tiny", "runs=2", cwd=tmp_path)
    assert done.returncode == 2 and "runs=2 is not allowed with rlopt tune" in done.stderr


def test_evaluate_takes_controller_vectorize_but_no_other_controller_key(tmp_path):
    done = call_cli("evaluate", "policy=x.zip", "runs=2", "controller.vectorize=population", "controller.n_envs=2",
                    cwd=tmp_path)
    assert done.returncode == 2 and "controller.n_envs=2 is not allowed with policy=x.zip" in done.stderr
    done = call_cli("evaluate", "policy=x.zip", "runs=0", "controller.vectorize=population", cwd=tmp_path)
    assert done.returncode == 2 and "runs=0 is not allowed" in done.stderr


def test_a_run_saved_before_runs_and_vectorize_existed_has_the_same_config():
    """Rerunning an older sweep continues it: a saved config without the keys added since ran as their value."""
    cfg = make_cfg("controller=adam")
    saved = config_values(cfg)
    del saved["runs"], saved["controller"]["vectorize"]
    assert differing_keys(saved, config_values(cfg)) == []
    saved["controller"]["vectorize"] = "population"
    assert differing_keys(saved, config_values(cfg)) == ["controller.vectorize"]
