"""Instance sets: families of tasks with a train and a test part (`instances=<set>`, docs/guide/instances.md).

`spec` reads and checks a set (explicit lists, a seeded generator, a DACBench CSV via `dacbench`) and
applies an instance to a run config; `runs` runs a command over a set's instances, a folder each.
"""

from rlopt.instances.runs import instance_part, jobs, run_config, run_each
from rlopt.instances.spec import Instance, InstanceSet, apply, load_set

__all__ = ["Instance", "InstanceSet", "apply", "instance_part", "jobs", "load_set", "run_config", "run_each"]
