"""SAM and the optimizer bank (one optimizer per choice, each keeping its state across switches)."""

from rlopt.optim.bank import OPTIMIZERS, OptimizerBank, build_optimizer
from rlopt.optim.sam import SAM

__all__ = ["OPTIMIZERS", "OptimizerBank", "SAM", "build_optimizer"]
