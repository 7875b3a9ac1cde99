"""Epsilon schedules for SB3's DQN beyond its built-in linear one.

SB3 anneals epsilon linearly from `exploration_initial_eps` to `exploration_final_eps` over the
first `exploration_fraction` of the learning budget. The learning-rate DQN decays it
exponentially instead (fast early, a long tail of rare exploration), over the same span and
with the same SB3 hyperparameters, by replacing `model.exploration_schedule` after construction.
"""

from __future__ import annotations

from rlopt.errors import UserError


class ExponentialSchedule:
    """start x (end/start)^(t / end_fraction) for t = 1 - progress_remaining, then `end`.

    A class rather than a closure so a saved agent (policy.zip) pickles it by reference, like
    SB3's own `LinearSchedule`.
    """

    def __init__(self, start: float, end: float, end_fraction: float):
        self.start, self.end, self.end_fraction = start, end, end_fraction

    def __call__(self, progress_remaining: float) -> float:
        t = min((1 - progress_remaining) / self.end_fraction, 1.0)
        return self.start * (self.end / self.start) ** t

    def __repr__(self) -> str:
        return f"ExponentialSchedule(start={self.start}, end={self.end}, end_fraction={self.end_fraction})"


def configure_exploration(model, kind) -> None:
    """Apply `controller.exploration` to a DQN model (`linear` keeps SB3's own schedule)."""
    if kind == "linear":
        return
    if not 0 < model.exploration_final_eps <= model.exploration_initial_eps:
        raise UserError(
            f"controller.hyperparams.exploration_final_eps={model.exploration_final_eps} is not allowed with "
            f"exponential exploration: use 0 < final <= initial ({model.exploration_initial_eps})"
        )
    if not 0 < model.exploration_fraction <= 1:
        raise UserError(f"controller.hyperparams.exploration_fraction={model.exploration_fraction} is not allowed: "
                        "use 0 < fraction <= 1")
    model.exploration_schedule = ExponentialSchedule(
        model.exploration_initial_eps, model.exploration_final_eps, model.exploration_fraction
    )
