"""Reward functions, built from the reward config's `_target_` and shared by every controller.

Each reward sees a `RewardContext`: the validation metrics before and after the decision
step, the step's wall time, the best validation loss before it and the budget left.
Accuracy terms are 0 for regression tasks (no accuracy there).
"""

from __future__ import annotations

from dataclasses import dataclass

from rlopt.config import instantiate_node


@dataclass
class RewardContext:
    prev_loss: float
    loss: float
    prev_acc: float | None
    acc: float | None
    step_time: float
    best_loss_before: float
    epochs_left: float
    last: bool

    @property
    def d_acc(self) -> float:
        return 0.0 if self.acc is None or self.prev_acc is None else self.acc - self.prev_acc

    @property
    def loss_drop(self) -> float:
        return self.prev_loss - self.loss


class Composite:
    """w_acc*dAcc + w_loss*dLoss - w_time*step_time, plus w_final*val_acc on the last step."""

    def __init__(self, w_acc: float, w_loss: float, w_time: float, w_final: float):
        self.w_acc, self.w_loss, self.w_time, self.w_final = w_acc, w_loss, w_time, w_final

    def __call__(self, ctx: RewardContext) -> float:
        r = self.w_acc * ctx.d_acc + self.w_loss * ctx.loss_drop - self.w_time * ctx.step_time
        if ctx.last:
            r += self.w_final * (ctx.acc or 0.0)
        return r


class AccuracyDelta:
    """val_acc_t - val_acc_{t-1}."""

    def __call__(self, ctx: RewardContext) -> float:
        return ctx.d_acc


class LossDelta:
    """val_loss_{t-1} - val_loss_t: positive when the loss drops."""

    def __call__(self, ctx: RewardContext) -> float:
        return ctx.loss_drop


class BestLoss:
    """gamma*(best_loss - val_loss) + lambda*(epochs left): beat the best loss, and do it early."""

    def __init__(self, gamma: float, lambda_: float):
        self.gamma, self.lambda_ = gamma, lambda_

    def __call__(self, ctx: RewardContext) -> float:
        return self.gamma * (ctx.best_loss_before - ctx.loss) + self.lambda_ * ctx.epochs_left


def build_reward(cfg):
    """The reward function `cfg` names by its `_target_` (a class above), built with the config's other keys."""
    return instantiate_node(cfg, "reward")
