"""Reward functions, built from the reward config's `_target_` and shared by every controller.

Each reward sees a `RewardContext`: the validation metrics before and after the decision
step, what the step cost (its gradient evaluations, and its measured wall time), the best
validation loss before it and the budget left. Accuracy terms are 0 for regression tasks.

The composite reward's compute cost counts gradient evaluations by default, not measured
seconds: the same seed then gives the same rewards, so the same agent and the same metrics.csv,
on any machine; measured time (`cost=wall_time`) varies from run to run.
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
    step_time: float  # measured seconds (training + validation): differs run to run
    step_grad_evals: int  # gradient evaluations of the step's training (a SAM batch counts 2)
    batches_per_epoch: int  # gradient evaluations of one SGD epoch
    best_loss_before: float
    epochs_left: float
    last: bool

    @property
    def d_acc(self) -> float:
        return 0.0 if self.acc is None or self.prev_acc is None else self.acc - self.prev_acc

    @property
    def loss_drop(self) -> float:
        return self.prev_loss - self.loss

    @property
    def sgd_epochs(self) -> float:
        """The step's compute in SGD epochs: 1 for an SGD epoch, 2 for a SAM epoch, N/batches for N SGD steps."""
        return self.step_grad_evals / self.batches_per_epoch


COSTS = ("grad_evals", "wall_time")


class Composite:
    """w_acc*dAcc + w_loss*dLoss - w_time*seconds, plus w_final*val_acc on the last step.

    `seconds` is what the step is charged for its compute. `cost=grad_evals` (deterministic):
    the step's gradient evaluations in SGD epochs x `epoch_seconds`, the time one SGD epoch is
    taken to last, so a SAM step costs exactly twice an SGD step, as measured time would charge
    it without the noise, and `w_time` keeps its meaning of a weight per second. `cost=wall_time`:
    the step's measured seconds (not reproducible: the same seed gives other rewards, so another run).
    """

    def __init__(self, w_acc: float, w_loss: float, w_time: float, w_final: float, cost: str, epoch_seconds: float):
        if str(cost) not in COSTS:
            raise ValueError(f"cost must be one of {', '.join(COSTS)}, not {cost}")
        if not epoch_seconds > 0:
            raise ValueError(f"epoch_seconds must be > 0, not {epoch_seconds}")
        self.w_acc, self.w_loss, self.w_time, self.w_final = w_acc, w_loss, w_time, w_final
        self.cost, self.epoch_seconds = str(cost), float(epoch_seconds)

    def seconds(self, ctx: RewardContext) -> float:
        """The step's compute as the reward charges it."""
        return ctx.step_time if self.cost == "wall_time" else ctx.sgd_epochs * self.epoch_seconds

    def __call__(self, ctx: RewardContext) -> float:
        r = self.w_acc * ctx.d_acc + self.w_loss * ctx.loss_drop - self.w_time * self.seconds(ctx)
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
