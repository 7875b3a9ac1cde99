"""Fixed learning-rate schedules as controllers: the baselines of the learning-rate agents.

`controller=schedule` trains with one optimizer (`controller.optimizer`) starting at
`controller.lr` and moves the learning rate with a `torch.optim.lr_scheduler` class, through the
same environment and loop as the agents, so budgets, metrics and outputs are directly comparable.
The scheduler is attached to the episode's `Trainer`, which steps it after every optimizer step
(cosine, onecycle: both span the whole optimizer-step budget) or at every epoch end (step,
exponential), whatever `env.steps_per_action` is. `constant` attaches none. `cosine_restarts` is SGDR
(CosineAnnealingWarmRestarts), stepped per optimizer step, its period `T_0` given in epochs.

Over Prodigy and D-Adaptation a schedule moves the multiplier of their estimated step size (their
packages recommend the usual schedule on top, from lr 1.0), so `controller.lr` is that multiplier.
Schedule-free optimizers replace the schedule: only `constant` is allowed (warmup: their `warmup_steps`).
"""

from __future__ import annotations

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from rlopt.errors import UserError
from rlopt.run.protocol import Controller


def _has_momentum(opt) -> bool:
    return "momentum" in opt.defaults or "betas" in opt.defaults


# name -> (when it steps, the arguments the run supplies from (optimizer, lr, budget in steps)); the scheduler
# itself is `controller.<name>._target_` (a torch.optim.lr_scheduler class), built with the rest of
# `controller.<name>`, which may override these.
SCHEDULES = {
    "step": ("epoch", lambda opt, lr, budget: {}),
    "exponential": ("epoch", lambda opt, lr, budget: {}),
    "cosine": ("step", lambda opt, lr, budget: {"T_max": budget}),
    # lr is the peak; momentum (SGD) or beta1 (Adam) cycles inversely where the optimizer has one (not Adadelta)
    "onecycle": ("step", lambda opt, lr, budget: {"max_lr": lr, "total_steps": budget, "cycle_momentum": _has_momentum(opt)}),
    # SGDR (CosineAnnealingWarmRestarts): the first period is controller.cosine_restarts.T_0 epochs, in steps to torch
    "cosine_restarts": ("step", lambda opt, lr, budget: {}),
}
EPOCH_ARGS = {"cosine_restarts": ("T_0",)}  # arguments given in epochs in the config, in optimizer steps to torch
SCHEDULE_NAMES = ("constant", *SCHEDULES)


class ScheduleController(Controller):
    """Always the one optimizer; the learning rate follows `controller.schedule`."""

    def __init__(self, cfg, seed: int):
        self.schedule = str(cfg.schedule)
        if self.schedule not in SCHEDULE_NAMES:
            raise UserError(f"controller.schedule={self.schedule} is unknown; available: {', '.join(SCHEDULE_NAMES)}")
        lr = cfg.lr
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
            raise UserError(f"controller.lr={lr} is not allowed: it must be a number > 0")
        self.lr = float(lr)
        self.params = OmegaConf.to_container(cfg[self.schedule], resolve=True) if self.schedule in SCHEDULES else {}

    def check_optimizer(self, bank) -> None:
        """A schedule-free optimizer replaces the schedule; over Prodigy/D-Adaptation lr is a multiplier near 1."""
        name = bank.active
        if bank.is_schedule_free and self.schedule != "constant":
            raise UserError(f"controller.schedule={self.schedule} is not allowed with {name}: a schedule-free "
                            f"optimizer replaces the schedule; use constant (warmup: optim.{name}.warmup_steps)")
        if bank.lr_is_multiplier and not 0.1 <= self.lr <= 10:
            raise UserError(f"controller.lr={self.lr:g} is not allowed with {name}: it multiplies the step size "
                            f"{name} estimates (1.0 = as estimated, the package default); use 0.1..10")

    def act(self, obs):
        return 0  # the one optimizer; the scheduler, not the action, moves the lr

    def start_episode(self, env) -> None:
        """Set the initial lr on the episode's fresh optimizer and hand its scheduler to the trainer (the
        optimizer's own checks first: the bank knows what it is)."""
        self.check_optimizer(env.bank)
        env.bank.set_lr(self.lr)
        if self.schedule == "constant":
            return
        interval, supplied = SCHEDULES[self.schedule]
        opt = env.bank.current
        params = {k: round(v * env.batches_per_epoch) if k in EPOCH_ARGS.get(self.schedule, ()) else v
                  for k, v in self.params.items()}
        try:
            scheduler = instantiate({**supplied(opt, self.lr, env.budget_steps), **params}, opt)
        except InstantiationException as err:
            raise UserError(f"controller.{self.schedule}={self.params} is not allowed: {' '.join(str(err).split())}") from None
        env.attach_lr_scheduler(scheduler, interval)
