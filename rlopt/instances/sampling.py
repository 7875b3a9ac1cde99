"""An agent learning across an instance set: each of its training runs trains a train instance drawn from its run seed.

`make_env` gives the environment of such a run (in the main process, and in each worker process with
`controller.n_envs=K`) a `RunTasks`, its `TrainingEnv.run_tasks`: whenever the env starts a run it trains the Task
of the instance that run's seed draws (`InstanceSet.draw(run_seed)`), and so does an env restored from a
checkpoint, for the run it was in (`TrainingEnv.load_state_dict`), so a resumed run trains the instance it drew. The
run seeds are the environment's own (seed + run index; a worker's are given by `RunSlot`), so the draw is a
function of the seed and the run: the same command draws the same instances. Each instance's Task (its data on the
device) is built once and kept. The agent's controlled final run draws its instance the same way, and every row of
learning_metrics.csv names the instance of its run (`instance` column).

Populations (`controller.vectorize=population`) batch members of one architecture: a set whose train part
spans several (`InstanceSet.groups`) must be drawn per group, one population per group.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf

from rlopt.instances.spec import InstanceSet, apply, load_set
from rlopt.task import Task, make_task


def learns_across(cfg: DictConfig) -> bool:
    """Whether the run is an agent drawing a train instance per run (an instance set, no `instance` named)."""
    return (OmegaConf.select(cfg, "instances") is not None and OmegaConf.select(cfg, "instance") is None
            and cfg.controller.type == "sb3" and load_set(cfg, check=False) is not None)


class RunTasks:
    """The Task each run trains: that of the train instance its run seed draws."""

    def __init__(self, cfg: DictConfig, device: torch.device, instances: InstanceSet | None = None):
        """`cfg`: the run's config (instance-free, with its `instances` set); `instances`: that set, if loaded."""
        self.cfg, self.device = cfg, device
        self.instances = instances if instances is not None else load_set(cfg, check=False)
        self.built: dict[str, Task] = {}  # by instance id (the `instance` of the applied config, the Task's name)

    def __call__(self, run_seed: int) -> Task:
        inst = self.instances.draw(run_seed)
        if inst.id not in self.built:
            self.built[inst.id] = make_task(apply(self.cfg, inst), device=self.device)
        return self.built[inst.id]
