"""Instance sets: families of tasks with a train and a test part (`instances=<set>`, docs/guide/instances.md).

`spec` reads and checks a set (explicit lists, a seeded generator, a DACBench CSV via `dacbench`) and
applies an instance to a run config; `runs` runs a command over a set's instances, a folder each;
`sampling` gives an agent's learning runs their drawn train instances.
"""

from rlopt.instances.runs import check_run, instance_config, jobs, run_each, run_instance
from rlopt.instances.spec import Instance, InstanceSet, apply, load_set

__all__ = ["Instance", "InstanceSet", "apply", "check_run", "instance_config", "jobs", "load_set", "run_each",
           "run_instance"]
