"""SAM and the optimizer bank (one optimizer per choice, each keeping its state across switches)."""

from rlopt.optim.bank import MULTIPLIER_LR, OPTIMIZERS, SCHEDULE_FREE, OptimizerBank, build_optimizer
from rlopt.optim.sam import SAM

__all__ = ["MULTIPLIER_LR", "OPTIMIZERS", "OptimizerBank", "SAM", "SCHEDULE_FREE", "build_optimizer"]
