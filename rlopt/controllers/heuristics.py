"""Heuristic baselines that switch optimizers on a fixed plan: what a user would try before an agent.

`late_sam` (Zhou et al., arXiv 2410.10373, "Sharpness-aware minimization efficiently selects flatter
minima late in training"): SGD, then SAM for the last fraction f of the budget, which on CIFAR-10
comes close to SAM all along at about (1 + f) times SGD's gradient evaluations. It acts through the
same loop as every controller, one decision step at a time: the last round(f x decisions) decision
steps (at least one) take `choices[1]`, the others `choices[0]`. With one decision per epoch and a
10-epoch budget, f = 0.125 is the last epoch; `env.steps_per_action` makes the switch finer. Each
optimizer keeps its own state (the bank's rule), so SAM starts with its own momentum buffer.

(`sam_every_k`, a SAM step every k optimizer steps, switches inside a decision step: it is an
optimizer of the bank, `rlopt.optim.sam_arms.SAMEveryK`, run by a fixed controller.)
"""

from __future__ import annotations

from rlopt.errors import UserError
from rlopt.run.protocol import Controller


class LateSAMController(Controller):
    """`choices[0]` (SGD), then `choices[1]` (SAM) for the last `controller.fraction` of the decision steps."""

    def __init__(self, cfg, seed: int):
        self.fraction = float(cfg.fraction)  # a float by the schema
        if not 0 < self.fraction <= 1:
            raise UserError(f"controller.fraction={self.fraction} is not allowed: use a number in (0, 1]")
        self.env = None
        self.first_late = 0

    def setup(self, env, state: dict | None, context) -> None:
        if env.action_space.n != 2:
            raise UserError(f"controller.actions.choices is not allowed with late_sam: it needs two optimizers "
                            f"(early, late), got {env.action_space.n}")

    def start_episode(self, env) -> None:
        """The decision step from which on the late optimizer is taken (the env counts the decisions taken)."""
        self.env = env
        n = env.decisions_per_episode
        self.first_late = n - max(1, round(self.fraction * n))

    def act(self, obs):
        return int(self.env.decision >= self.first_late)
