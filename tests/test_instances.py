"""Instance sets: the presets compose, the train/test parts never share a task, draws repeat, bad specs are one line,
and DACBench's SGD instance-set CSV is read as it is."""

from __future__ import annotations

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import make_cfg
from rlopt.errors import UserError
from rlopt.evaluate import evaluate
from rlopt.files import read_json
from rlopt.instances import apply, load_set
from rlopt.instances.spec import Instance, check_split
from rlopt.paths import conf_dir
from rlopt.report import report
from rlopt.train import train

PRESETS = ["poly_family", "digits_family", "mnist_mlp_family", "mixed_family"]


def _set(*overrides):
    return load_set(make_cfg(*overrides))


def test_no_instance_set_by_default():
    cfg = make_cfg()
    assert cfg.instances.name == "none" and cfg.instance is None and load_set(cfg) is None


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_hold_disjoint_train_and_test_parts(preset):
    instances = _set(f"instances={preset}")
    assert instances.train and instances.test
    assert not {i.id for i in instances.train} & {i.id for i in instances.test}
    assert not {i.task for i in instances.train} & {i.task for i in instances.test}
    assert {i.part for i in instances.train} == {"train"} and {i.part for i in instances.test} == {"test"}


def test_the_generator_and_holdout_repeat_with_their_seeds_and_change_with_them():
    first, again = _set("instances=poly_family"), _set("instances=poly_family")
    assert [(i.id, i.task) for i in first.all] == [(i.id, i.task) for i in again.all]
    other = _set("instances=poly_family", "instances.generate.seed=1")
    assert [i.task for i in other.all] != [i.task for i in first.all]
    moved = _set("instances=poly_family", "instances.holdout.seed=1")
    assert {i.task for i in moved.all} == {i.task for i in first.all}
    assert [i.id for i in moved.test] != [i.id for i in first.test]


def test_a_learning_run_draws_its_train_instance_from_its_run_seed():
    instances = _set("instances=poly_family")
    draws = [instances.draw(s).id for s in range(40)]
    assert draws == [instances.draw(s).id for s in range(40)]
    assert set(draws) <= {i.id for i in instances.train} and len(set(draws)) > 3


def test_an_instance_applied_sets_its_options_and_keys_and_names_itself():
    cfg = make_cfg("instances=mixed_family")
    instances = load_set(cfg)
    run = apply(cfg, instances.get("poly_d4"))
    assert run.instance == "poly_d4" and run.dataset.name == "polynomial" and run.model.name == "maclaurin"
    assert run.dataset.degree == 4 and run.dataset.noise == 0.1 and run.trainer.max_steps == 600
    assert cfg.dataset.name == "digits"  # the command's config is left as it was
    assert run.dataset.val_size == 100 and run.dataset.train_subset == 256  # +debug=tiny's sizes carried over
    assert run.dataset.test_size == 32  # polynomial's own (digits' 360 is its default, not the command's)
    assert apply(run, instances.get("poly_d4")) == run  # idempotent: a saved config applies to itself


def test_the_split_never_leaks_a_train_task_into_test():
    a = Instance("a", "train", {"dataset": {"name": "digits"}})
    twin = Instance("b", "test", {"dataset": {"name": "digits"}})
    with pytest.raises(UserError, match="test instance b .* is the task of train instance a"):
        check_split([a], [twin])
    with pytest.raises(UserError, match="id a is used twice"):
        check_split([a], [Instance("a", "test", {"dataset": {"name": "polynomial"}})])
    # through a config: the same settings listed under both parts
    same = "{id: x, dataset: {name: digits, train_subset: 300}}"
    other = "{id: y, dataset: {train_subset: 300, name: digits}}"
    with pytest.raises(UserError, match="must not overlap"):
        _set(f"instances.train=[{same}]", f"instances.test=[{other}]")


@pytest.mark.parametrize("override, expected", [
    ("instances.train=[{id: a, controller: {name: sgd}}]", "instances.train[0].controller is not allowed"),
    ("instances.train=[{id: a, trainer: {device: cpu}}]", "instances.train[0].trainer.device is not allowed"),
    ("instances.train=[{dataset: {name: digits}}]", "instances.train[0] is not allowed: an instance is a mapping with an `id`"),
    ("instances.train=[{id: a, dataset: {name: nope}}]", "dataset.name=nope is unknown; available:"),
    ("instances.train=[{id: a, dataset: {name: digits, degree: 2}}]", "instances.train[0] (id a): dataset.degree cannot be set"),
    ("instances.train=[{id: a, optim: {adam: {lrr: 0.1}}}]", "optim.adam.lrr cannot be set"),
    ("instances.holdout.test=99", "instances.holdout.test=99 is not allowed: use 0..12"),
    ("instances.generate.count=0", "instances.generate.count=0 is not allowed"),
    ("instances.generate.space.dataset.coef_scale={low: 3, high: 1}",
     "instances.generate.space.dataset.coef_scale={'low': 3, 'high': 1, 'log': True} is not allowed: low <= high"),
])
def test_bad_instance_specs_are_one_line(override, expected):
    with pytest.raises(UserError) as err:
        _set("instances=poly_family", override)
    line = str(err.value)
    assert expected in line and "\n" not in line


def test_a_space_with_fewer_distinct_tasks_than_asked_is_one_line():
    cfg = make_cfg("instances=poly_family")
    OmegaConf.update(cfg, "instances.generate.space", {"dataset": {"name": "polynomial", "degree": {"choices": [2, 3]}}},
                     merge=False)
    with pytest.raises(UserError, match="instances.generate.count=12 is not allowed: the space holds only 2 distinct"):
        load_set(cfg)


def test_population_groups_share_an_architecture():
    cfg = make_cfg("instances=mnist_mlp_family")
    assert len(load_set(cfg).groups(cfg)) == 2  # one population per MLP width; data, budget and lr do not count
    cfg = make_cfg("instances=mixed_family")
    groups = load_set(cfg).groups(cfg)
    assert len(groups) == 5
    poly = load_set(make_cfg("instances=poly_family"))
    degree_groups = poly.groups(make_cfg("instances=poly_family"))
    assert len(degree_groups) == 3  # the output layer follows the degree
    for members in degree_groups.values():  # a population draws its members within one group
        assert {poly.draw(s, among=members).id for s in range(20)} <= {m.id for m in members}


HEADER = ("id,dataset,model_type,model_kwargs,optimizer,optimizer_params,seed,batch_size,train_validation_ratio,"
          "fraction_of_dataset\n")


def test_a_dacbench_sgd_csv_is_read_as_it_is(tmp_path, capfd):
    mnist = tmp_path / "data" / "MNIST"
    mnist.mkdir(parents=True)
    csv = tmp_path / "sgd_test.csv"
    csv.write_text(HEADER
                   + "0,MNIST,from_file,small_mnist_model.json,Adam,\"{'lr': 0.002}\",7,64,0.8,0.5\n"
                   + "1,MNIST,from_file,small_mnist_model.json,SGD,,4294967295,32,0.9,1\n"
                   + "2,CIFAR10,from_file,small_cifar_model.json,AdamW,,0,32,0.8,1\n"
                   + "3,MNIST_28,from_torchhub,'pytorch/vision:v0.10.0-resnet18-False,RMSprop,,0,1024,0.8,1\n")
    cfg = make_cfg(f"instances.file={csv}", f"dataset.root={tmp_path / 'data'}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RLOPT_DATA", str(tmp_path / "data"))
        instances = load_set(cfg)
    assert instances.name == "sgd_test" and [i.id for i in instances.train] == ["row0", "row1"]
    lines = capfd.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and "row 4 (id 2)" in lines[0] and "row 5 (id 3)" in lines[1]
    assert "small_cifar_model.json" in lines[0] and "AdamW" in lines[0] and "CIFAR10 data" in lines[0]
    assert "RMSprop" in lines[1]
    row0 = OmegaConf.create(instances.get("row0").settings)
    assert row0.dataset == {"name": "mnist", "val_size": 12000, "split_seed": 7, "train_subset": 24000}
    assert row0.model.name == "small_cnn" and row0.trainer.batch_size == 64 and row0.optim.adam.lr == 0.002
    assert instances.get("row1").settings["dataset"]["train_subset"] is None


def test_a_dacbench_csv_without_a_runnable_row_or_its_columns_is_one_line(tmp_path):
    csv = tmp_path / "bad.csv"
    csv.write_text(HEADER + "0,CIFAR10,from_file,small_cifar_model.json,AdamW,,0,32,0.8,1\n")
    with pytest.raises(UserError, match="none of its 1 rows can run here"):
        _set(f"instances.file={csv}")
    csv.write_text("ID,dataset,seed\n0,MNIST,1\n")
    with pytest.raises(UserError, match="missing DACBench columns id, model_type"):
        _set(f"instances.file={csv}")


# -- a tiny study end to end: an agent learns across train instances, baselines run on every instance, the frozen
# agent is evaluated on the test instances, and the report scores them --------------------------------------------------
def _poly(iid: str, degree: int, steps: int, noise: float = 0.0) -> str:
    return (f"{{id: {iid}, dataset: {{name: polynomial, degree: {degree}, noise: {noise}}}, model: {{name: maclaurin}}, "
            f"trainer: {{max_steps: {steps}, batch_size: 32}}}}")


TINY_SET = ["instances.name=tiny", f"instances.train=[{_poly('a', 2, 20)},{_poly('b', 3, 15)}]",
            f"instances.test=[{_poly('c', 4, 20)},{_poly('d', 3, 20, 0.2)}]", "env.steps_per_action=5",
            "trainer.plots=false", "trainer.tensorboard=false", "trainer.threads=1"]


@pytest.mark.slow
def test_learning_across_instances_evaluation_and_the_scorecard(tmp_path):
    agent = make_cfg(*TINY_SET, "controller=ppo_lr", "controller.episodes=3")
    train(agent, tmp_path / "agent")
    learning = pd.read_csv(tmp_path / "agent" / "learning_metrics.csv")
    drawn = load_set(agent)
    assert learning.groupby("episode")["instance"].first().tolist() == [drawn.draw(s).id for s in range(3)]
    budgets = {"a": 4, "b": 3}  # decisions per run: max_steps / steps_per_action
    assert learning.groupby("episode").size().tolist() == [budgets[drawn.draw(s).id] for s in range(3)]
    summary = read_json(tmp_path / "agent" / "summary.json")
    assert summary["instance"] == drawn.draw(3).id and summary["instance_part"] == "train"
    assert summary["dataset"] == "polynomial"

    for controller in ("adam", "sgd", "random"):
        train(make_cfg(*TINY_SET, f"controller={controller}", "instance=all"), tmp_path / "baselines" / controller)
    assert sorted(p.name for p in (tmp_path / "baselines" / "adam").iterdir()) == ["a_s0", "b_s0", "c_s0", "d_s0"]
    assert read_json(tmp_path / "baselines" / "adam" / "c_s0" / "summary.json")["instance_part"] == "test"

    frozen = make_cfg(*TINY_SET, f"policy={tmp_path / 'agent' / 'policy.zip'}", "runs=2", config="evaluate")
    evaluate(frozen, tmp_path / "eval")
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == ["c_s0", "c_s1", "d_s0", "d_s1"]

    out = tmp_path / "report"
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        cfg = compose(config_name="report", overrides=[f"out={out}", "report.bootstrap.reps=200"])
    cfg.dirs = [str(tmp_path / d) for d in ("agent", "baselines", "eval")]
    report(cfg, out)
    gaps = pd.read_csv(out / "scorecard.csv").set_index("method")
    assert set(gaps.index) == {"adam", "sgd", "random", "ppo_lr_frozen"}
    assert gaps.loc["ppo_lr_frozen", "test_instances"] == 2 and gaps.loc["ppo_lr_frozen", "n"] == 4
    per_instance = pd.read_csv(out / "scorecard_instances.csv")
    assert set(per_instance["instance"]) == {"a", "b", "c", "d"}
    sbs = "adam" if "adam (SBS)" in (out / "scorecard.md").read_text() else "sgd"
    train_iqm = per_instance[per_instance["part"] == "train"].pivot(index="instance", columns="method", values="normalised")
    assert sbs == train_iqm[["adam", "sgd"]].mean().idxmax()  # chosen on the train instances
    costs = pd.read_csv(out / "amortised.csv").set_index("method")
    assert costs.loc["ppo_lr_frozen", "learning_grad_evals"] == summary["total_grad_evals"]
    assert costs.loc["ppo_lr_frozen", "deployments"] == 2
    assert b"/FontFile2" in (out / "scorecard.pdf").read_bytes()  # TrueType embedded
    assert (out / "scorecard.png").stat().st_size > 10_000


