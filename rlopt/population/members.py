"""One member of a population seen as a single run: its optimizer bank, trainer and model.

`TrainingEnv` turns a run into an MDP (actions, rewards, bests, the metrics row) by reading a bank, a
trainer and a model; these views give it member k's row of a `PopulationTrainer` instead, so each
member of `rlopt.env.population_env.PopulationEnv` is a `TrainingEnv` whose optimizer steps the
population takes for all members at once, and every action space applies to a member unchanged.
"""

from __future__ import annotations

import numpy as np

from rlopt.data import Split
from rlopt.population.trainer import PopulationTrainer


class _Member:
    """A view of member `k` of `population`."""

    def __init__(self, population: PopulationTrainer, k: int):
        self.population, self.k = population, k


class MemberBank(_Member):
    """What the action spaces call on a bank (`select`, `lr`, `set_lr`, `active`), on member k."""

    is_schedule_free = lr_is_multiplier = False  # what a constant-lr schedule asks: no batched optimizer is either

    @property
    def active(self) -> str:
        return self.population.names[self.population.active[self.k]]

    def select(self, name: str) -> None:
        self.population.select(self.k, name)

    @property
    def lr(self) -> float:
        return self.population.lr(self.k)

    def set_lr(self, lr: float) -> None:
        self.population.set_lr(self.k, lr)


class MemberModel(_Member):
    """Member k's weights as a model's state_dict (the best-weights copy and its restore at the end)."""

    def state_dict(self) -> dict:
        return self.population.member_state(self.k)

    def load_state_dict(self, state: dict) -> None:
        self.population.load_member(self.k, state)


class MemberTrainer(_Member):
    """Member k's counters, divergence check and evaluation, as `engine.Trainer` has them for one run."""

    def __init__(self, population: PopulationTrainer, k: int):
        super().__init__(population, k)
        self.model = MemberModel(population, k)

    @property
    def data(self):
        """The data of the Task member k trains now."""
        return self.population.tasks[self.k].data

    @property
    def opt_steps(self) -> int:
        return int(self.population.opt_steps[self.k])

    @property
    def grad_evals(self) -> int:
        return int(self.population.grad_evals[self.k])

    @property
    def epochs_done(self) -> float:
        return int(self.population.opt_steps[self.k]) / int(self.population.batches_per_epoch[self.k])

    def steps_left_in_epoch(self) -> int:
        left = int(self.population.batches_per_epoch[self.k] - self.population.batch_in_epoch[self.k])
        return left if left > 0 else int(self.population.batches_per_epoch[self.k])

    def weights_finite(self) -> bool:
        return bool(self.population.weights_finite()[self.k])

    def evaluate(self, split: Split) -> dict:
        return self.population.evaluate(split, np.array([self.k]))[0]
