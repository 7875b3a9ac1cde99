"""Controllers behind one small interface (`rlopt.run.protocol.Controller`), driven by `rlopt.run.runner.Runner`.

Fixed baselines (one optimizer, or one learning-rate schedule) and the random controller are policies
that ignore (or barely use) the observation; SB3 agents learn from it (`rlopt.run.protocol.Agent`). All of them act
through the same `TrainingEnv`, so every comparison runs the same loop and writes the same files.
"""

from rlopt.controllers.fixed import FixedController, RandomController
from rlopt.controllers.heuristics import LateSAMController
from rlopt.controllers.sb3 import SB3Controller, load_policy
from rlopt.controllers.schedule import ScheduleController
from rlopt.errors import UserError

CONTROLLERS = {"fixed": FixedController, "random": RandomController, "schedule": ScheduleController, "sb3": SB3Controller,
               "late_sam": LateSAMController}


def build_controller(cfg, seed: int):
    try:
        cls = CONTROLLERS[cfg.type]
    except KeyError:
        raise UserError(f"controller.type={cfg.type} is unknown; available: {', '.join(CONTROLLERS)}") from None
    return cls(cfg, seed)


__all__ = ["CONTROLLERS", "build_controller", "load_policy"]
