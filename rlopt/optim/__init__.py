"""The optimizer bank (one optimizer per choice, each keeping its state across switches) and rlopt's SAM."""

from rlopt.optim.bank import OptimizerBank, build_optimizer
from rlopt.optim.sam import SAM

__all__ = ["OptimizerBank", "SAM", "build_optimizer"]
