"""Typed schemas of every config group, registered in Hydra's ConfigStore under `schema/`.

Each YAML in conf/ names its schema first in its defaults list (`- /schema/<group>/<kind>@_here_`),
so Hydra checks it at composition: a key the schema lacks (a typo, or a preset setting
`controller.episodes` on a fixed baseline) and a value of the wrong type (`trainer.epochs=abc`)
fail before any rlopt code runs. Types and the set of keys live here; the values live in the
YAML with their one-line descriptions. A field has a default here only where no YAML sets it (a
controller's `type` and `algo`, a model's `_target_`), so no value is written twice
(tests/test_config_values.py walks both and names any key that is). `MISSING` (`???`) fields are
those every YAML of that kind sets. `controller.actions` is typed by the schema of its family of
action spaces, which each controller YAML composes in (`- /schema/controller/actions/<family>@actions`).

Value checks a type cannot express (positive sizes, open intervals) are in `rlopt.config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


class Choice(str, Enum):
    """A closed set of string values: OmegaConf checks them at composition, and the value prints as itself."""

    def __str__(self) -> str:
        return self.value


class Device(Choice):
    """trainer.device: the closed set of devices a run may ask for."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"



class Vectorize(Choice):
    """controller.vectorize: how K runs at once are trained (an agent's `controller.n_envs=K`, `runs=K` seeds)."""

    processes = "processes"  # one worker process per run
    population = "population"  # one vectorised model in this process (rlopt.population)


class Cost(Choice):
    """reward.cost: how the composite reward charges a step's compute (see `rlopt.rewards.Composite`)."""

    grad_evals = "grad_evals"
    wall_time = "wall_time"



# ---- the `rlopt train` config's own blocks (values: conf/train.yaml) ----

@dataclass
class CheckpointConfig:
    every: int = MISSING
    keep: bool = MISSING


@dataclass
class TrainerConfig:
    epochs: int = MISSING
    max_steps: int | None = MISSING
    batch_size: int = MISSING
    eval_batch_size: int = MISSING
    device: Device = MISSING
    threads: int | None = MISSING
    amp: Any = MISSING  # auto | true | false (OmegaConf has no str-or-bool type: checked in rlopt.config)
    channels_last: bool = MISSING
    compile: bool = MISSING
    converged_tolerance: float = MISSING
    progress: bool = MISSING
    plots: bool = MISSING
    tensorboard: bool = MISSING


@dataclass
class OptimizerConfig:
    """What rlopt itself reads of an optimizer node `optim.<name>` (conf/optim/<name>.yaml), typed when the bank
    builds it (`rlopt.optim.bank`). Every other key of the node is a keyword argument of its `_target_` class,
    checked by that class (a refusal is one line naming the node), so the schema does not copy the packages'
    signatures and adding a package optimizer is a YAML file."""

    _target_: str = MISSING
    lr_is_multiplier: bool = False  # lr multiplies a step size it estimates (Prodigy, D-Adaptation): lr ranges must allow 1.0
    bn_batches: int = 0  # schedule-free: training batches to recompute BatchNorm statistics over at x before evaluating


@dataclass
class EnvConfig:
    steps_per_action: int | None = MISSING
    features: list[str] = MISSING
    divergence_penalty: float = MISSING


@dataclass
class TuningConfig:
    """Compute spent choosing this config (`rlopt tune` writes it into its best override line)."""

    grad_evals: int = MISSING
    trials: int = MISSING


@dataclass
class HoldoutConfig:
    """instances.holdout: how many generated or file instances form the test part, drawn with `seed`."""

    test: int = MISSING
    seed: int = MISSING


@dataclass
class GenerateConfig:
    """instances.generate: `count` instances drawn with `seed` from `space` (an instance's sections and keys, each
    a value, {choices: [...]} or {low, high, log, int}), as CARL samples contexts; checked by `rlopt.instances.spec`."""

    count: int = MISSING
    seed: int = MISSING
    space: dict[str, Any] = MISSING


@dataclass
class InstancesConfig:
    """The `instances` group: a set of tasks (rlopt.instances) with a train and a test part."""

    name: str = MISSING
    file: str | None = MISSING  # a DACBench SGD instance-set CSV
    train: list[Any] = MISSING  # explicit instances: {id, dataset: {...}, model: {...}, trainer: {...}, optim: {...}}
    test: list[Any] = MISSING
    generate: GenerateConfig | None = MISSING
    holdout: HoldoutConfig = field(default_factory=HoldoutConfig)


@dataclass
class TrainConfig:
    """`rlopt train`: the four groups (each typed by its own schema below) plus the run's own blocks."""

    dataset: Any = MISSING
    model: Any = MISSING
    controller: Any = MISSING
    reward: Any = MISSING
    seed: int = MISSING
    instances: InstancesConfig = field(default_factory=InstancesConfig)
    instance: str | None = MISSING
    label: str | None = MISSING
    reference: str | None = MISSING
    resume: str | None = MISSING
    runs: int = MISSING
    tuning: TuningConfig = field(default_factory=TuningConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    optim: dict[str, Any] = MISSING  # the bank: conf/optim/<name>.yaml, each an OptimizerConfig + its class's arguments
    env: EnvConfig = field(default_factory=EnvConfig)


@dataclass
class EvaluateConfig(TrainConfig):
    policy: str = MISSING
    portfolio: list[str] | None = MISSING


class Stat(Choice):
    """report.stat: what a table cell shows."""

    iqm = "iqm"
    mean_std = "mean_std"



@dataclass
class BootstrapConfig:
    reps: int = MISSING
    seed: int = MISSING


@dataclass
class ReportSettings:
    stat: Stat = MISSING
    reference: str | None = MISSING
    low: str | None = MISSING
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)


@dataclass
class TunePrunerConfig:
    min_resource: int = MISSING
    reduction_factor: int = MISSING


@dataclass
class TuneHeartbeatConfig:
    interval: int = MISSING
    grace: int = MISSING


@dataclass
class TuneSettings:
    """`tune.*`; the values (metric, space, storage) are checked by `rlopt.tune.validate_tune`."""

    n_trials: int = MISSING
    budget_grad_evals: int | None = MISSING
    metric: str = MISSING
    space: dict[str, Any] = MISSING  # config key (nested) -> {low, high, log} or {choices}
    seed: int = MISSING
    worker: int = MISSING
    dir: str | None = MISSING
    storage: str | None = MISSING
    study_name: str = MISSING
    pruner: TunePrunerConfig = field(default_factory=TunePrunerConfig)
    heartbeat: TuneHeartbeatConfig = field(default_factory=TuneHeartbeatConfig)
    final_seeds: list[int] = MISSING


@dataclass
class TuneConfig(TrainConfig):
    final: bool = MISSING
    tune: TuneSettings = field(default_factory=TuneSettings)


@dataclass
class ReportConfig:
    dirs: list[str] = MISSING
    sweep: str | None = MISSING
    runs_csv: str | None = MISSING
    out: str = MISSING
    report: ReportSettings = field(default_factory=ReportSettings)


# ---- dataset ----

@dataclass
class DatasetConfig:
    """Every dataset; `default_model` is the model option `model=auto` builds for it."""

    name: str = MISSING
    default_model: str = MISSING
    root: str | None = MISSING
    download: bool = MISSING
    train_subset: int | None = MISSING
    val_size: int = MISSING
    test_subset: int | None = MISSING
    augment: bool = MISSING
    # the seed of the validation split and the training subset; null = the run's seed. Instance sets fix it per
    # instance (DACBench's `seed` column), so an instance is the same data whatever seed the run trains with.
    split_seed: int | None = None


@dataclass
class FixedSplitDatasetConfig(DatasetConfig):
    """A dataset without a published test split: a fixed one of `test_size` examples is carved out."""

    test_size: int = MISSING


@dataclass
class PolynomialDatasetConfig(FixedSplitDatasetConfig):
    n_polynomials: int = MISSING
    scales: list[float] = MISSING
    degree: int = MISSING
    coef_scale: float = MISSING
    noise: float = MISSING
    n_points: int = MISSING
    x_min: float = MISSING
    x_max: float = MISSING


# ---- model: `_target_` is the builder, called with (input_shape, outputs) ----

@dataclass
class ModelConfig:
    name: str = MISSING
    _target_: str = MISSING
    _partial_: bool = True


@dataclass
class AutoModelConfig:
    """model=auto: no builder of its own; the dataset's `default_model` option is built instead."""

    name: str = MISSING


@dataclass
class ResNet18Config(ModelConfig):
    _target_: str = "rlopt.models.zoo.resnet18"


@dataclass
class ResNet18ImagenetConfig(ModelConfig):
    _target_: str = "rlopt.models.zoo.resnet18_imagenet"


@dataclass
class SmallCNNConfig(ModelConfig):
    _target_: str = "rlopt.models.zoo.small_cnn"
    dropout: bool = MISSING


@dataclass
class DigitsCNNConfig(ModelConfig):
    _target_: str = "rlopt.models.zoo.digits_cnn"


@dataclass
class MLPConfig(ModelConfig):
    _target_: str = "rlopt.models.zoo.mlp"
    hidden: list[int] = MISSING


# ---- reward: `_target_` is the reward class, built with the remaining keys ----

@dataclass
class RewardConfig:
    name: str = MISSING
    _target_: str = MISSING


@dataclass
class CompositeRewardConfig(RewardConfig):
    _target_: str = "rlopt.rewards.Composite"
    w_acc: float = MISSING
    w_loss: float = MISSING
    w_time: float = MISSING
    w_final: float = MISSING
    cost: Cost = MISSING
    epoch_seconds: float = MISSING


@dataclass
class BestLossRewardConfig(RewardConfig):
    _target_: str = "rlopt.rewards.BestLoss"
    gamma: float = MISSING
    lambda_: float = MISSING


@dataclass
class AccuracyDeltaRewardConfig(RewardConfig):
    _target_: str = "rlopt.rewards.AccuracyDelta"


@dataclass
class LossDeltaRewardConfig(RewardConfig):
    _target_: str = "rlopt.rewards.LossDelta"


# ---- controller.actions: one schema per family of action spaces (rlopt.env.actions, rlopt.env.layer_actions) ----

class Exploration(Choice):
    """controller.exploration (DQN): how epsilon decays (rlopt.controllers.exploration)."""

    linear = "linear"
    exponential = "exponential"


def _kinds(name: str, *values: str) -> type[Choice]:
    """The `controller.actions.kind` values one action schema allows: switching `kind` on the command line
    to a family with other keys is refused at composition, naming the kinds this family has."""
    return Choice(name, [(value, value) for value in values])


OptimizerKind = _kinds("OptimizerKind", "optimizer")
GridKind = _kinds("GridKind", "lr_grid", "lr_grid_index", "lr_multiplicative")  # over a log-spaced grid of lrs
AbsoluteKind = _kinds("AbsoluteKind", "lr_absolute")
LayerKind = _kinds("LayerKind", "layer_lr")


@dataclass
class OptimizerActions:
    kind: OptimizerKind = MISSING
    choices: list[str] = MISSING


@dataclass
class GridActions:
    kind: GridKind = MISSING
    optimizer: str = MISSING
    n: int = MISSING
    low: float = MISSING
    high: float = MISSING
    start: int | None = MISSING
    factor: float = MISSING  # lr_multiplicative only


@dataclass
class AbsoluteActions:
    kind: AbsoluteKind = MISSING
    optimizer: str = MISSING
    log_low: float = MISSING
    log_high: float = MISSING


@dataclass
class LayerActions:
    kind: LayerKind = MISSING
    optimizer: str = MISSING
    factors: list[float] = MISSING
    low: float = MISSING
    high: float = MISSING
    start_lr: float | None = MISSING


# ---- controller: one schema per kind (`type` selects the controller class) ----

@dataclass
class ControllerConfig:
    name: str = MISSING
    type: str = MISSING
    actions: Any = MISSING  # typed by the action schema its YAML composes in (`/schema/controller/actions/<kind>@actions`)
    # K runs at once (an agent's controller.n_envs=K learning runs; the runs=K seeds of a baseline or frozen policy):
    # one process each, or one vectorised model in this process (rlopt.population)
    vectorize: Vectorize = Vectorize.processes


@dataclass
class FixedControllerConfig(ControllerConfig):
    type: str = "fixed"
    action: int = MISSING


@dataclass
class RandomControllerConfig(ControllerConfig):
    type: str = "random"


@dataclass
class ScheduleControllerConfig(ControllerConfig):
    type: str = "schedule"
    optimizer: str = MISSING
    lr: float = MISSING
    schedule: str = MISSING
    # each schedule's own arguments, torch's names (any torch accepts): checked when the scheduler is built
    step: dict[str, Any] = MISSING
    exponential: dict[str, Any] = MISSING
    cosine: dict[str, Any] = MISSING
    onecycle: dict[str, Any] = MISSING
    cosine_restarts: dict[str, Any] = MISSING


@dataclass
class LateSAMControllerConfig(ControllerConfig):
    type: str = "late_sam"
    fraction: float = MISSING  # the last fraction of the decision steps, which take choices[1]


@dataclass
class SB3ControllerConfig(ControllerConfig):
    type: str = "sb3"
    algo: str = MISSING
    episodes: int = MISSING
    n_envs: int = MISSING
    save_policy: bool = MISSING
    hyperparams: dict[str, Any] = MISSING  # the SB3 algorithm's own keyword arguments


@dataclass
class DQNControllerConfig(SB3ControllerConfig):
    algo: str = "dqn"
    exploration: Exploration = MISSING


@dataclass
class PPOControllerConfig(SB3ControllerConfig):
    algo: str = "ppo"


@dataclass
class LayerwiseControllerConfig(PPOControllerConfig):
    per_layer: bool = MISSING
    difference_reward: bool = MISSING


SCHEMAS = {
    "schema": {"train": TrainConfig, "evaluate": EvaluateConfig, "report": ReportConfig, "tune": TuneConfig},
    "schema/instances": {"set": InstancesConfig},
    "schema/dataset": {"base": DatasetConfig, "fixed_split": FixedSplitDatasetConfig,
                       "polynomial": PolynomialDatasetConfig},
    "schema/model": {"auto": AutoModelConfig, "resnet18": ResNet18Config, "resnet18_imagenet": ResNet18ImagenetConfig,
                     "small_cnn": SmallCNNConfig, "digits_cnn": DigitsCNNConfig, "mlp": MLPConfig},
    "schema/reward": {"composite": CompositeRewardConfig, "best_loss": BestLossRewardConfig,
                      "accuracy_delta": AccuracyDeltaRewardConfig, "loss_delta": LossDeltaRewardConfig},
    "schema/controller": {"fixed": FixedControllerConfig, "random": RandomControllerConfig,
                          "schedule": ScheduleControllerConfig, "late_sam": LateSAMControllerConfig, "dqn": DQNControllerConfig,
                          "ppo": PPOControllerConfig, "layerwise": LayerwiseControllerConfig},
    "schema/controller/actions": {"optimizer": OptimizerActions, "grid": GridActions, "absolute": AbsoluteActions,
                                  "layer_lr": LayerActions},
}


def register() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent: storing again replaces)."""
    store = ConfigStore.instance()
    for group, schemas in SCHEMAS.items():
        for name, node in schemas.items():
            store.store(group=group, name=name, node=node)
