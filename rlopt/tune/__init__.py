"""`rlopt tune`: an Optuna study over a baseline's hyperparameters, each trial one `rlopt train` run.

Every trial goes through `rlopt.run.experiment.run_experiment` (same loop, data split and budget as any run) into
its own compact folder `trials/NNNN/` (no plots, no checkpoints). A row observer reports the
validation metric of every decision step to the trial, and Optuna's Hyperband pruner stops the
trials that fall behind. Only validation metrics are read: the test split never informs tuning.

The tune folder holds the study (SQLite unless `tune.storage` names another storage), the
config it was started with (`tune.yaml`), `trials.csv`, `tune.json` and the best config as a
ready override line (`best_overrides.txt`) and as a full config (`best.yaml`). Several workers
pointed at one tune folder (`tune.dir`, or `resume=DIR`) share the study; a trial whose worker
died (kill -9, a cancelled job) is marked failed and run again, found at once on the same host
(its pid is gone) and elsewhere by Optuna's heartbeat (SQL storages). `final=true` then runs the
best config on the evaluation seeds, its summaries carrying the tuning compute.

One job per module: `space` (tune.* checked, the search space), `folder` (the tune folder, its stored
config, resume and joining workers), `storage` (the study's storage, dead workers' trials repeated),
`objective` (one trial: its config, its run, pruning), `budget` (when to stop starting trials),
`outputs` (trials.csv, tune.json, best.yaml, best_overrides.txt), `final` (the best config on the
evaluation seeds) and `command` (`tune()` and `@hydra.main`, which put them together).
"""

from rlopt.tune.command import main, tune
from rlopt.tune.storage import open_storage

__all__ = ["main", "open_storage", "tune"]
