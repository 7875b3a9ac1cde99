"""Population mode: K training runs of one architecture as one vectorised model in one process.

`PopulationTrainer` (trainer.py) steps K members with stacked weights through torch.func; the batched
optimizers (optimizers.py) and macro scores (scores.py) keep each member equal to a single run with its
seed. `rlopt.env.population_env` drives it as a gymnasium VectorEnv.
"""

from rlopt.population.optimizers import BATCHED
from rlopt.population.trainer import PopulationStats, PopulationTrainer, check_batchable

__all__ = ["BATCHED", "PopulationStats", "PopulationTrainer", "check_batchable"]
