"""Controllers behind one small interface (`rlopt.run.protocol.Controller`), driven by `rlopt.run.runner.Runner`.

Fixed baselines (one optimizer, or one learning-rate schedule) and the random controller are policies
that ignore (or barely use) the observation; SB3 agents learn from it (`rlopt.run.protocol.Agent`). All of them act
through the same `TrainingEnv`, so every comparison runs the same loop and writes the same files.

Each kind's module is imported when a controller of that kind is built: a fixed baseline never imports
Stable-Baselines3 (about a second of start-up), an agent does.
"""

import importlib

from rlopt.errors import UserError

# controller.type -> the module and class that implement it
CONTROLLERS = {"fixed": ("rlopt.controllers.fixed", "FixedController"),
               "random": ("rlopt.controllers.fixed", "RandomController"),
               "schedule": ("rlopt.controllers.schedule", "ScheduleController"),
               "sb3": ("rlopt.controllers.sb3", "SB3Controller"),
               "late_sam": ("rlopt.controllers.heuristics", "LateSAMController")}


def controller_class(kind: str) -> type:
    """The class of controller type `kind`, importing its module now."""
    try:
        module, name = CONTROLLERS[kind]
    except KeyError:
        raise UserError(f"controller.type={kind} is unknown; available: {', '.join(CONTROLLERS)}") from None
    return getattr(importlib.import_module(module), name)


def build_controller(cfg, seed: int):
    return controller_class(cfg.type)(cfg, seed)


def run_controller(cfg):
    """The controller of the run config `cfg` (what `rlopt train` and `rlopt tune` run), seeded with its seed."""
    return build_controller(cfg.controller, int(cfg.seed))


__all__ = ["CONTROLLERS", "build_controller", "controller_class", "run_controller"]
