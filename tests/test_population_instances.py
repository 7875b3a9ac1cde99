"""Population mode across an instance set: members of one population train different Tasks of one architecture.

Each member's run trains the instance its run seed draws (among its architecture group), with that instance's
data (noise, coefficient scale, subset, split), batch size, budget, optimizer hyperparameters and validation
split. Checked against the reference, a single run (`TrainingEnv`) of the same instance with the same run seed:
discrete columns identical, losses within 1e-5 relative over runs of up to 100 optimizer steps in fp32 (the
tolerance and the reason for it: tests/test_population.py).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import call_cli, make_cfg
from rlopt.env import make_env, make_population_env
from rlopt.env.population_env import MemberGroup
from rlopt.errors import UserError
from rlopt.files import read_json
from rlopt.instances import apply, load_set
from rlopt.task import make_task
from test_population import DISCRETE, FLOATS, TOL, assert_close_obs, one_thread  # noqa: F401 (autouse fixture)

CPU = torch.device("cpu")


def _instance(iid: str, dataset: str, trainer: str, optim: str, model: str = "{name: maclaurin}") -> str:
    return f"{{id: {iid}, dataset: {dataset}, model: {model}, trainer: {trainer}, optim: {optim}}}"


# One architecture (degree 2), each instance with its own data, batch size, budget and optimizer settings; the
# budgets end runs at different steps, so members redraw while the others go on.
POLY_SET = [
    "instances.name=poly3",
    "instances.train=[" + ",".join([
        _instance("p8", "{name: polynomial, degree: 2, noise: 0.0, coef_scale: 1.0, train_subset: 256, val_size: 100}",
                  "{batch_size: 8, max_steps: 100}",
                  "{adam: {lr: 3.0e-3}, sgd: {lr: 0.01, momentum: 0.9, nesterov: true}}"),
        _instance("p16", "{name: polynomial, degree: 2, noise: 0.1, coef_scale: 2.0, train_subset: 200, val_size: 80, "
                  "split_seed: 5}", "{batch_size: 16, max_steps: 60}",
                  "{adam: {lr: 1.0e-3, betas: [0.8, 0.99]}, sgd: {lr: 0.02, momentum: 0.0, weight_decay: 0.0}}"),
        _instance("p32", "{name: polynomial, degree: 2, noise: 0.3, coef_scale: 0.5, train_subset: 240, val_size: 120}",
                  "{batch_size: 32, max_steps: 40}",
                  "{adam: {lr: 5.0e-3, weight_decay: 0.01}, sgd: {lr: 0.005, momentum: 0.5}, sam: {rho: 0.1}}"),
    ]) + "]",
    "instances.test=[" + _instance("t", "{name: polynomial, degree: 3}", "{batch_size: 32}", "{}") + "]",
    "dataset.train_subset=null", "trainer.amp=false", "trainer.device=cpu", "env.steps_per_action=10",
]
DIGITS_SET = [
    "instances.name=digits3",
    "instances.train=[" + ",".join([
        _instance(f"d{b}", f"{{name: digits, train_subset: {n}, val_size: {v}, split_seed: {s}}}",
                  f"{{batch_size: {b}, max_steps: {m}}}", f"{{sgd: {{lr: {lr}}}, adam: {{lr: 2.0e-3}}}}",
                  "{name: mlp, hidden: [16]}")
        for b, n, v, s, m, lr in ((16, 256, 100, 1, 60, 0.02), (24, 300, 90, 2, 40, 0.05), (40, 200, 110, 3, 50, 0.01))
    ]) + "]",
    "instances.test=[" + _instance("dt", "{name: digits}", "{batch_size: 32}", "{}", "{name: mlp, hidden: [16]}") + "]",
    "trainer.amp=false", "trainer.device=cpu", "env.steps_per_action=10",
]


def _drawing(cfg, among):
    """run seed -> (instance, its Task): the draw `InstanceSampler` makes, each Task built once."""
    instances, tasks = load_set(cfg), {}

    def draw(run_seed: int):
        inst = instances.draw(run_seed, among=among)
        if inst.id not in tasks:
            tasks[inst.id] = make_task(apply(cfg, inst), device=CPU)
        return tasks[inst.id]
    return draw


@pytest.mark.parametrize("overrides, controller, actions", [
    (POLY_SET, "ppo_lr", lambda rng: rng.uniform(-0.45, -0.1, (3, 1)).astype(np.float32)),  # Adam lr 1e-4.7..1e-3.3
    # SGD / SAM / Adam with each instance's settings; classification: accuracy and macro scores, own val splits
    pytest.param(POLY_SET, "ppo_3opt", lambda rng: rng.integers(0, 3, 3), marks=pytest.mark.slow),
    pytest.param(DIGITS_SET, "ppo_3opt", lambda rng: rng.integers(0, 3, 3), marks=pytest.mark.slow),
])
def test_each_member_equals_a_single_run_of_the_instance_its_run_seed_draws(overrides, controller, actions):
    cfg = make_cfg(*overrides, f"controller={controller}")
    instances = load_set(cfg)
    assert len(instances.groups(cfg)) == 1  # one architecture: one population of 3 members
    draw = _drawing(cfg, instances.train)
    pop = make_population_env(cfg, 3, groups=[MemberGroup([0, 1, 2], draw)])
    runs, singles = [0, 0, 0], [None, None, None]

    def start_single(k: int) -> np.ndarray:
        """The reference: a fresh single run of the instance member k's next run draws, with its run seed."""
        run_seed = cfg.seed + k + 3 * runs[k]
        singles[k] = make_env(apply(cfg, instances.draw(run_seed)), device=CPU)
        return singles[k].reset(options={"run_seed": run_seed})[0]

    obs, _ = pop.reset()
    for k in range(3):
        assert_close_obs(obs[k], start_single(k))
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(12):
        act = actions(rng)
        obs, _, terminated, _, infos = pop.step(act)
        for k, single in enumerate(singles):
            one_obs, reward, done, _, info = single.step(act[k])
            row = infos["metrics"][k]
            want = {**info["metrics"], "env": k, "run_seed": single.run_seed, "instance": single.task.name}
            assert {c: row[c] for c in (*DISCRETE, "instance")} == {c: want[c] for c in (*DISCRETE, "instance")}
            for c in FLOATS:
                scale = TOL * abs(want["val_loss"]) if c == "reward" and math.isfinite(want["val_loss"]) else 0
                assert row[c] == pytest.approx(want[c], rel=TOL, abs=scale, nan_ok=True), (c, row, want)
            for c in ("val_acc", "val_precision", "val_recall", "val_f1"):
                assert row[c] == pytest.approx(want[c], abs=1e-12)
            assert terminated[k] == done and not row["diverged"]
            seen.add((row["instance"], row["opt_steps"]))
            if done:
                assert_close_obs(infos["final_obs"][k], one_obs)
                runs[k] += 1
                one_obs = start_single(k)
            assert_close_obs(obs[k], one_obs)
    ids = {i.id for i in instances.train}
    assert {i for i, _ in seen} == ids and sum(runs) >= 3  # every instance trained; runs ended and redrew
    budgets = {inst.id: make_task(apply(cfg, inst), device=CPU).budget_steps for inst in instances.train}
    assert {i for i, steps in seen if steps == budgets[i]} == ids  # each ran its own budget to the end
    assert len(set(budgets.values())) == 3 and max(budgets.values()) >= 50


def test_members_of_two_architectures_are_two_populations_driven_as_one_vector_env():
    """A set spanning degrees 2 and 3: member k draws among group k mod 2; both populations step together and each
    member still equals its single run."""
    cfg = make_cfg(*POLY_SET[2:], "instances.name=two", "controller=ppo_lr",
                   "instances.train=[" + POLY_SET[1][len("instances.train=["):-1] + ","
                   + _instance("q", "{name: polynomial, degree: 3, noise: 0.1}", "{batch_size: 16, max_steps: 30}",
                               "{}") + "]")
    instances = load_set(cfg)
    pools = instances.population_pools(cfg, 4)
    assert [[i.id for i in pool] for pool in pools] == [["p8", "p16", "p32"], ["q"]] * 2
    groups = [MemberGroup([0, 2], _drawing(cfg, pools[0])), MemberGroup([1, 3], _drawing(cfg, pools[1]))]
    pop = make_population_env(cfg, 4, groups=groups)
    assert len(pop.populations) == 2 and pop.observation_space.shape[0] == 4
    obs, _ = pop.reset()
    singles = []
    for k in range(4):
        singles.append(make_env(apply(cfg, instances.draw(cfg.seed + k, among=pools[k])), device=CPU))
        assert_close_obs(obs[k], singles[k].reset(options={"run_seed": cfg.seed + k})[0])
    act = np.full((4, 1), -0.3, dtype=np.float32)
    for _ in range(2):
        obs, _, _, _, infos = pop.step(act)
        for k, single in enumerate(singles):
            one_obs, _, _, _, info = single.step(act[k])
            assert infos["metrics"][k]["instance"] == single.task.name and infos["metrics"][k]["env"] == k
            assert infos["metrics"][k]["val_loss"] == pytest.approx(info["metrics"]["val_loss"], rel=TOL)
            assert_close_obs(obs[k], one_obs)
    with pytest.raises(UserError, match="controller.n_envs=1 is not allowed .* span 2 architectures"):
        instances.population_pools(cfg, 1)


def test_an_agent_learns_across_an_instance_set_in_population_mode_from_the_cli(tmp_path):
    """Two architecture groups, K=4 members: each run's rows name the instance its run seed draws among its
    member's group, with that instance's budget; the final run draws among every train instance."""
    train_set = ("[{id: a, dataset: {name: polynomial, degree: 2}, model: {name: maclaurin}, "
                 "trainer: {max_steps: 20, batch_size: 32}}, "
                 "{id: e, dataset: {name: polynomial, degree: 2, noise: 0.3}, model: {name: maclaurin}, "
                 "trainer: {max_steps: 10, batch_size: 8}}, "
                 "{id: b, dataset: {name: polynomial, degree: 3}, model: {name: maclaurin}, "
                 "trainer: {max_steps: 15, batch_size: 16}}]")
    args = ["+debug=tiny", "instances.name=tiny", f"instances.train={train_set}",
            "instances.test=[{id: c, dataset: {name: polynomial, degree: 4}, model: {name: maclaurin}}]",
            "env.steps_per_action=5", "trainer.tensorboard=false", "trainer.threads=1", "controller=ppo_lr",
            "controller.episodes=8", "controller.n_envs=4", "controller.vectorize=population"]
    done = call_cli("train", *args, "hydra.run.dir=run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    cfg = make_cfg(*args[1:])  # make_cfg adds +debug=tiny
    instances = load_set(cfg)
    pools = instances.population_pools(cfg, 4)
    learning = pd.read_csv(tmp_path / "run" / "learning_metrics.csv")
    assert (learning["env"] == learning["episode"] % 4).all() and (learning["run_seed"] == learning["episode"]).all()
    per_run = learning.groupby("episode").agg(env=("env", "first"), instance=("instance", "unique"),
                                              decisions=("step", "size"))
    drawn = [instances.draw(run, among=pools[env]).id for run, env in zip(per_run.index, per_run["env"])]
    assert [list(i) for i in per_run["instance"]] == [[i] for i in drawn]
    assert {"a", "e", "b"} <= set(drawn)
    assert all((i == "b") == (env % 2 == 1) for i, env in zip(drawn, per_run["env"]))  # odd members: degree 3
    budgets = {"a": 4, "e": 2, "b": 3}  # max_steps / steps_per_action
    finished = per_run.index < 8
    assert (per_run["decisions"][finished] == [budgets[i] for i in np.array(drawn)[finished]]).all()
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["status"] == "completed" and summary["vectorize"] == "population"
    assert summary["instance"] == instances.draw(8).id


def test_fewer_members_than_architecture_groups_is_one_line(tmp_path):
    three = ",".join(f"{{id: g{d}, dataset: {{name: polynomial, degree: {d}}}, model: {{name: maclaurin}}}}"
                     for d in (2, 3, 4))
    done = call_cli("train", "+debug=tiny", "instances.name=three", f"instances.train=[{three}]",
                    "instances.test=[{id: t, dataset: {name: polynomial, degree: 1}, model: {name: maclaurin}}]",
                    "controller=ppo_lr", "controller.episodes=2", "controller.n_envs=2",
                    "controller.vectorize=population", "hydra.run.dir=run", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if "controller.n_envs=2 is not allowed" in line]
    assert len(lines) == 1 and "span 3 architectures" in lines[0] and "n_envs >= 3" in lines[0], done.stderr
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())  # refused before it writes


def test_macro_scores_of_members_with_their_own_padded_labels_equal_scikit_learns():
    from sklearn.metrics import precision_recall_fscore_support

    from rlopt.population.scores import macro_scores

    rng = np.random.default_rng(2)
    sizes = [50, 31, 44]  # each member's own validation split, padded to 50
    true = torch.from_numpy(rng.integers(0, 6, (3, 50)))
    pred = torch.from_numpy(rng.integers(0, 5, (3, 50)))
    true[1, 31:] = 6  # labels only the padding has: left out of member 1's mean
    valid = torch.arange(50)[None, :] < torch.tensor(sizes)[:, None]
    got = macro_scores(pred, true, n_classes=7, valid=valid)
    for k, n in enumerate(sizes):
        t, p = true[k, :n].numpy(), pred[k, :n].numpy()
        want = precision_recall_fscore_support(t, p, average="macro", zero_division=0)[:3]
        assert [got[c][k].item() for c in ("precision", "recall", "f1")] == pytest.approx(want, abs=1e-15)
        assert got["acc"][k].item() == np.mean(p == t)
