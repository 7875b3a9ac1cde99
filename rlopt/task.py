"""A `Task`: what is trained, apart from how its training is controlled.

As learned_optimization's tasks and DACBench's instances separate them: a Task holds the data
splits (already on the device), how to build the model, the loss, the batch size and the budget,
and the base seed; the environment (`rlopt.env.TrainingEnv`) adds the control: the action space,
the observation features, the reward and the decision interval. The population engine batches
Tasks of one architecture, and instance sets sample them.

`make_task(cfg)` is the one place that reads a composed run config into a Task.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from rlopt.data import DataBundle, load_dataset
from rlopt.engine import Trainer, resolve_device
from rlopt.models import ModelBuilder


@dataclass
class Task:
    """One training problem. Run i of a Task trains with `seed + i` (its initial weights and batch order)."""

    name: str  # what reports call it: the dataset, or the instance id of an instance set
    data: DataBundle  # train / val / test splits on `device`
    model: Any  # the model's config node (`rlopt.models.ModelBuilder` builds it from its `_target_`)
    optim: Any  # every optimizer's hyperparameters (the `optim` node): what an action's optimizer starts from
    batch_size: int
    eval_batch_size: int
    budget_steps: int  # optimizer steps per training run
    seed: int
    device: torch.device
    amp: Any = "auto"  # `trainer.amp`: auto | true | false (see rlopt.engine.use_bf16)
    compile: bool = False  # torch.compile the model
    channels_last: bool = False  # conv nets in channels_last memory format (set only for images on CUDA)

    @cached_property  # read per member per decision in a population (its data and batch size never change)
    def batches_per_epoch(self) -> int:
        return Trainer.epoch_length(len(self.data.train), self.batch_size)

    @property
    def is_classification(self) -> bool:
        return self.data.is_classification

    @property
    def loss_fn(self):
        """The training loss: cross-entropy for classification, mean squared error for regression."""
        return F.cross_entropy if self.is_classification else F.mse_loss

    @cached_property
    def _builder(self) -> ModelBuilder:
        return ModelBuilder(self.model, self.data.name)

    def new_model(self) -> nn.Module:
        """The model, on the CPU, initialised from torch's current random state (a probe, or `build_model`'s start)."""
        return self._builder(self.data.input_shape, self.data.num_outputs)

    def build_model(self, run_seed: int) -> nn.Module:
        """The model of run `run_seed`: initialised from that seed, on the device, in its memory format."""
        torch.manual_seed(run_seed)
        model = self.new_model().to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.compile:
            model = torch.compile(model)
        return model

    def trainer(self, model: nn.Module, bank, run_seed: int) -> Trainer:
        """The inner loop of one run: `model` stepped by `bank`'s current optimizer, batches drawn from `run_seed`."""
        return Trainer(model, self.data, bank, self.device, self.batch_size, self.eval_batch_size, self.amp, run_seed)

    def score(self, val: dict) -> float:
        """Higher is better: accuracy for classification (ties broken by loss), -loss for regression."""
        if self.is_classification:
            return val["acc"] - 1e-9 * val["loss"]
        return -val["loss"]


def make_task(cfg, data: DataBundle | None = None, device: torch.device | None = None) -> Task:
    """The Task a composed run config describes, on `device` (default: `trainer.device`) with `data`
    (default: the config's dataset, its validation split carved with the run's seed).

    The budget is `trainer.max_steps` optimizer steps, else `trainer.epochs` full epochs."""
    device = resolve_device(cfg.trainer.device) if device is None else torch.device(device)
    if data is None:
        data = load_dataset(cfg.dataset, int(cfg.seed), device)
    trainer = cfg.trainer
    channels_last = bool(trainer.channels_last) and device.type == "cuda" and len(data.input_shape) == 3
    if channels_last:
        data.transform.memory_format = torch.channels_last
    batches = Trainer.epoch_length(len(data.train), int(trainer.batch_size))
    budget = int(trainer.max_steps) if trainer.max_steps is not None else int(trainer.epochs) * batches
    name = OmegaConf.select(cfg, "instance") or cfg.dataset.name  # an instance set's instance is named by its id
    return Task(name=str(name), data=data, model=cfg.model, optim=cfg.optim,
                batch_size=int(trainer.batch_size), eval_batch_size=int(trainer.eval_batch_size), budget_steps=budget,
                seed=int(cfg.seed), device=device, amp=trainer.amp, compile=bool(trainer.compile),
                channels_last=channels_last)
