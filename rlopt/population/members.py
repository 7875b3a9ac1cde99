"""One member of a population seen as a single run's optimizer bank: what the action spaces act on.

The action spaces of `rlopt.env.actions` select an optimizer and move its learning rate through a bank
(`select`, `set_lr`, `lr`); `MemberBank` does the same on member k's row of the population, so every
action space applies to a member unchanged.
"""

from __future__ import annotations

from rlopt.population.trainer import PopulationTrainer


class MemberBank:
    def __init__(self, population: PopulationTrainer, k: int):
        self.population, self.k = population, k

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
