"""Population mode: each member of a `PopulationTrainer` equals a single run (`engine.Trainer`) with its seed.

Every comparison trains both for 100 optimizer steps in fp32, 10 per round, and checks after each round:
opt_steps and grad_evals (and accuracy) identical; losses and gradient norms within 1e-5 relative. The
vectorised kernels (batched matmuls under vmap, the batched optimizer updates) round differently from
the single run's (plain matmuls, torch's fused optimizer steps): about 1e-7 per step, 1e-6 after 100
steps on the polynomial task. On a ReLU net at a large SGD step some seeds are chaotic: there the
single engine itself moves by 1e-3 within 60 steps when its initial weights are scaled by (1 + 1e-7),
and so does a member; those runs are not what these tests pin (see docs/guide/population.md).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from sklearn.metrics import precision_recall_fscore_support

from conftest import make_cfg
from rlopt.env import make_env, make_population_env
from rlopt.env.actions import build_actions
from rlopt.errors import UserError
from rlopt.optim import OptimizerBank
from rlopt.population import PopulationTrainer
from rlopt.population.members import MemberBank
from rlopt.population.optimizers import BatchedAdam
from rlopt.population.scores import macro_scores
from rlopt.population.trainer import check_batchable
from rlopt.task import make_task

CPU = torch.device("cpu")
POLY = ["dataset=polynomial", "model=maclaurin", "trainer.amp=false", "dataset.train_subset=null"]
SEEDS = (3, 4, 5)

TOL = 1e-5


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models step fastest on one thread (and the test machine's cores are shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Pair:
    """A population of len(SEEDS) members and, beside it, one single run per seed."""

    def __init__(self, *overrides: str, optimizers=("sgd",)):
        self.task = task = make_task(make_cfg(*overrides), device=CPU)
        self.data = task.data
        self.optimizers = list(optimizers)
        self.pop = PopulationTrainer(task, self.optimizers, len(SEEDS))
        self.singles = []
        for k, seed in enumerate(SEEDS):
            self.pop.init_member(k, seed)
            model = task.build_model(seed)
            self.singles.append(task.trainer(model, OptimizerBank(model.parameters, self.optimizers, task.optim),
                                             seed))

    def round(self, steps=10, members=None) -> None:
        """One round: member k takes steps[k] steps (all: `steps`), its single run the same; compare."""
        steps = np.full(len(SEEDS), steps) if np.isscalar(steps) else np.asarray(steps)
        stats = self.pop.train(steps)
        vals = self.pop.evaluate(self.data.val)
        for k in members if members is not None else range(len(SEEDS)):
            single = self.singles[k]
            one = single.train(int(steps[k]))
            val = single.evaluate(self.data.val)
            assert self.pop.opt_steps[k] == single.opt_steps and self.pop.grad_evals[k] == single.grad_evals
            assert stats.lr[k] == pytest.approx(one.lr, rel=1e-12)
            assert stats.train_loss[k] == pytest.approx(one.train_loss, rel=TOL)
            assert stats.grad_norm[k] == pytest.approx(one.grad_norm, rel=TOL)
            assert vals[k]["loss"] == pytest.approx(val["loss"], rel=TOL)
            for key in ("acc", "precision", "recall", "f1"):
                assert vals[k].get(key) == pytest.approx(val.get(key), abs=1e-12)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "sam"])
def test_each_member_equals_a_single_run_for_100_steps(optimizer):
    nesterov = "true" if optimizer == "sgd" else "false"  # SAM's base SGD with plain momentum
    pair = Pair(*POLY, f"optim.sgd.nesterov={nesterov}", optimizers=[optimizer])
    for _ in range(10):
        pair.round()
    assert pair.pop.grad_evals[0] == 100 * (2 if optimizer == "sam" else 1)


def test_members_choose_and_switch_optimizers_and_keep_each_ones_state():
    pair = Pair(*POLY, "optim.sgd.weight_decay=0.01", optimizers=["sgd", "adam", "sam"])
    plans = [["sgd", "adam", "sgd", "sam", "sgd"], ["adam"] * 5, ["sam", "sam", "sgd", "adam", "adam"]]
    for step in range(5):
        for k, plan in enumerate(plans):
            MemberBank(pair.pop, k).select(plan[step])
            pair.singles[k].bank.select(plan[step])
        pair.round(8)


@pytest.mark.parametrize("actions", [
    {"kind": "lr_absolute", "optimizer": "adam", "log_low": -4.0, "log_high": -1.0},
    {"kind": "lr_multiplicative", "optimizer": "sgd", "low": 1e-3, "high": 0.1, "n": 12, "start": None, "factor": 0.3},
    {"kind": "lr_grid", "optimizer": "sam", "low": 1e-3, "high": 0.1, "n": 6, "start": None},
])
def test_learning_rate_actions_move_each_members_lr_as_in_a_single_run(actions):
    pair = Pair(*POLY, optimizers=[actions["optimizer"]])
    rng = np.random.default_rng(0)
    spaces = [build_actions(OmegaConf.create(actions)) for _ in range(2 * len(SEEDS))]
    for k in range(len(SEEDS)):
        spaces[2 * k].reset(MemberBank(pair.pop, k))
        spaces[2 * k + 1].reset(pair.singles[k].bank)
    for _ in range(5):
        for k in range(len(SEEDS)):
            absolute = actions["kind"] == "lr_absolute"
            action = rng.uniform(-1, 1, 1).astype(np.float32) if absolute else int(rng.integers(3))
            spaces[2 * k].apply(action, MemberBank(pair.pop, k))
            spaces[2 * k + 1].apply(action, pair.singles[k].bank)
            assert pair.pop.lr(k) == pair.singles[k].bank.lr
        pair.round(7)


def test_members_at_different_points_of_their_runs_take_their_own_steps():
    """Rounds of unequal lengths cross epoch ends (6 steps per epoch) at different steps for each member."""
    pair = Pair(*POLY, optimizers=["adam"])
    for steps in ([7, 3, 0], [5, 11, 2], [0, 4, 13]):
        pair.round(steps)


def test_classification_members_have_identical_accuracy_and_scores():
    pair = Pair("dataset=digits", "model=mlp", "model.hidden=[32]", "trainer.amp=false", optimizers=["adam"])
    for _ in range(3):
        pair.round(8)


def test_cnn_members_run_through_vmap_and_equal_single_runs():
    pair = Pair("dataset=digits", "model=digits_cnn", "trainer.amp=false", optimizers=["adam"])
    assert pair.pop._mlp is None  # not an MLP: functional_call, vmapped
    for _ in range(2):
        pair.round(5)


def test_an_mlps_batched_matmuls_give_what_vmap_gives():
    """The MLP path (`stacked_mlp`) computes what the vmapped functional_call does: gradients, losses and
    validation outputs agree to float32 rounding (its features-first products sum in another order), for
    members on their own batches and on shared inputs."""
    pair = Pair("dataset=digits", "model=mlp", "model.hidden=[32,16]", "trainer.amp=false", optimizers=["adam"])
    pop = pair.pop
    assert pop._mlp is not None
    x, y, w = pop._batch(np.ones(len(SEEDS), dtype=bool))
    shared = pair.data.transform(pair.data.val.x[:50], train=False)
    got = pop._gradients(x, y, w), pop._forward(pop.weights(), shared)
    pop._mlp = None
    want = pop._gradients(x, y, w), pop._forward(pop.weights(), shared)
    for a, b in ((got[0][0], want[0][0]), (got[0][1], want[0][1]), (got[1], want[1])):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert got[1].shape == (len(SEEDS), 50, 10)


@pytest.mark.parametrize("overrides", [POLY, ["dataset=digits", "model=digits_cnn", "trainer.amp=false"]],
                         ids=["maclaurin", "digits_cnn"])
def test_a_members_initial_weights_are_its_single_runs_on_every_restart(overrides):
    """After its first run a member's initial weights are drawn into one kept module (no model built): still
    each seed's single-run weights, bit for bit, run after run."""
    task = make_task(make_cfg(*overrides), device=CPU)
    pop = PopulationTrainer(task, ["adam"], 2)
    for seed in (11, 12, 11, 40):
        pop.init_member(1, seed)
        want = task.build_model(seed).state_dict()
        got = pop.member_state(1)
        assert got.keys() == want.keys() and all(torch.equal(got[n], want[n]) for n in want)
    assert pop._reinit[id(task)][1] is not False, "the kept module should have been used"


def test_a_model_that_draws_otherwise_when_built_keeps_being_built(monkeypatch):
    """A model whose construction draws more than its layers' `reset_parameters` would (here: one extra draw)
    is not re-initialised in place: each member run builds it, and gets the single run's weights."""
    task = make_task(make_cfg(*POLY), device=CPU)
    build = task.new_model

    def drawing_more():
        torch.rand(3)
        return build()

    monkeypatch.setattr(task, "new_model", drawing_more)
    pop = PopulationTrainer(task, ["adam"], 1)
    for seed in (5, 6):
        pop.init_member(0, seed)
        torch.default_generator.manual_seed(seed)
        want = drawing_more().state_dict()
        assert all(torch.equal(pop.member_state(0)[n], want[n]) for n in want)
    assert pop._reinit[id(task)][1] is False


def test_one_member_diverging_leaves_the_others_untouched():
    pair = Pair(*POLY, optimizers=["sgd"])
    MemberBank(pair.pop, 1).set_lr(1e12)
    for _ in range(3):
        pair.round(10, members=[0, 2])
    assert pair.pop.weights_finite().tolist() == [True, False, True]


def test_macro_scores_equal_scikit_learns():
    rng = np.random.default_rng(1)
    true = torch.from_numpy(rng.integers(0, 6, 50))
    pred = torch.from_numpy(rng.integers(0, 5, (4, 50)))  # class 5 never predicted; member 3 predicts one class
    pred[3] = 2
    got = macro_scores(pred, true, n_classes=7)  # class 6 in neither: left out of the mean, as sklearn does
    for k in range(4):
        p, r, f1, _ = precision_recall_fscore_support(true.numpy(), pred[k].numpy(), average="macro", zero_division=0)
        assert got["precision"][k].item() == pytest.approx(p, abs=1e-15)
        assert got["recall"][k].item() == pytest.approx(r, abs=1e-15)
        assert got["f1"][k].item() == pytest.approx(f1, abs=1e-15)
        assert got["acc"][k].item() == np.mean(pred[k].numpy() == true.numpy())


def test_batched_adamw_equals_torch_adamw():
    torch.manual_seed(0)
    weights = torch.randn(3, 10)
    batched = BatchedAdam(3, 10, CPU, lr=torch.tensor([1e-2, 3e-2, 1e-3]), betas=(0.9, 0.99), weight_decay=0.1,
                          decoupled=True)
    params = weights.clone()
    singles = [torch.nn.Parameter(weights[k].clone()) for k in range(3)]
    opts = [torch.optim.AdamW([p], lr=lr, betas=(0.9, 0.99), weight_decay=0.1) for p, lr in zip(singles, [1e-2, 3e-2, 1e-3])]
    for step in range(50):
        grads = torch.sin(params * (step + 1))
        rows = torch.tensor([True, step % 2 == 0, True])  # member 1 steps every other round only
        batched.step(params, grads, rows)
        for k, (p, opt) in enumerate(zip(singles, opts)):
            if rows[k]:
                p.grad = torch.sin(p.detach() * (step + 1))
                opt.step()
    torch.testing.assert_close(params, torch.stack([p.detach() for p in singles]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("overrides, refused", [
    (["model=resnet18"], "model=resnet18 is not allowed in population mode"),
    (["model=small_cnn"], "use model.dropout=false"),
])
def test_models_population_mode_cannot_batch_are_refused_in_one_line(overrides, refused):
    task = make_task(make_cfg("dataset=digits", *overrides), device=CPU)
    with pytest.raises(UserError, match=refused):
        PopulationTrainer(task, ["sgd"], 2)


def test_a_model_with_tied_weights_is_refused_in_one_line():
    """The vectorised model calls functional_call without searching for tied weights: a model with them is refused."""
    tied = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 4))
    tied[2].weight = tied[0].weight
    with pytest.raises(UserError, match="model=tied is not allowed in population mode.*share"):
        check_batchable(tied, "tied")
    check_batchable(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)), "untied")


def test_optimizers_population_mode_cannot_batch_are_refused_in_one_line():
    task = make_task(make_cfg(*POLY), device=CPU)
    with pytest.raises(UserError, match="optimizer adadelta is not allowed in population mode.*sgd, sam, adam, adamw"):
        PopulationTrainer(task, ["sgd", "adadelta"], 2)


# -- the VectorEnv ------------------------------------------------------------------------------------
DISCRETE = ("episode", "epoch", "step", "action", "optimizer", "grad_evals", "opt_steps", "diverged", "env", "run_seed")
FLOATS = ("lr", "train_loss", "val_loss", "reward", "grad_norm")


def assert_close_obs(got, want):
    """Observations within 1e-5 of their scale: d_loss is a difference of losses (of 1e5 in an exploding run)."""
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL * max(1.0, float(np.abs(want).max())))


def test_population_env_rows_equal_single_runs_through_runs_that_end_and_restart():
    """K=3 members against 3 TrainingEnvs: 10 steps of 4-decision runs (each member restarts twice, with run
    seeds seed + k + 3j), member 1 diverging in its first run (lr 10^3 at its second decision)."""
    cfg = make_cfg(*POLY, "controller=ppo_lr", "env.steps_per_action=5", "trainer.max_steps=20",
                   "controller.actions.optimizer=sgd",
                   "controller.actions.log_high=3.0", "trainer.device=cpu")
    pop = make_population_env(cfg, 3)
    singles = [make_env(cfg) for _ in range(3)]
    runs = [0, 0, 0]
    obs, _ = pop.reset(seed=7)
    for k, single in enumerate(singles):
        first, _ = single.reset(seed=7 + k, options={"run_seed": cfg.seed + k})
        assert_close_obs(obs[k], first)
    rng = np.random.default_rng(0)
    diverged = []
    for step in range(10):
        actions = rng.uniform(-1, -0.5, (3, 1)).astype(np.float32)  # SGD lr 10^-6 .. 10^-2.25
        if step == 1:
            actions[1] = 1.0
        obs, rewards, terminated, _, infos = pop.step(actions)
        for k, single in enumerate(singles):
            one_obs, reward, done, _, info = single.step(actions[k])
            row, want = infos["metrics"][k], {**info["metrics"], "env": k, "run_seed": single.run_seed}
            assert {c: row[c] for c in DISCRETE} == {c: want[c] for c in DISCRETE}
            for c in FLOATS:  # a reward is a difference of losses: compared on the losses' scale
                scale = TOL * abs(want["val_loss"]) if c == "reward" and math.isfinite(want["val_loss"]) else 0
                assert row[c] == pytest.approx(want[c], rel=TOL, abs=scale, nan_ok=True)
            assert terminated[k] == done
            diverged += [k] if row["diverged"] else []
            if done:
                assert_close_obs(infos["final_obs"][k], one_obs)
                runs[k] += 1
                one_obs, _ = single.reset(options={"run_seed": cfg.seed + k + 3 * runs[k]})
            assert_close_obs(obs[k], one_obs)
    assert diverged == [1] and runs[0] == runs[2] == 2 and runs[1] == 3  # member 1 ended its first run early
    assert [row["episode"] for row in infos["metrics"]] == [6, 7, 8]  # run i = k + 3j
