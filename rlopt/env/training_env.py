"""`TrainingEnv`: a gymnasium environment whose episode is one training run.

reset() builds a fresh model and optimizer bank (seeded) and evaluates it once on validation;
step(action) applies the action (optimizer choice or learning-rate move), trains for one
decision step (one epoch, or `env.steps_per_action` optimizer steps), evaluates on validation
and returns the observation, the reward, `terminated` (budget spent or divergence) and the
step's metrics row in `info["metrics"]`. Fixed baselines and RL agents all act through here.

It is a plain gymnasium environment around a `Task` (what is trained: data on the device, model,
loss, budget, seed; see `rlopt.task`), built by `rlopt.env.make_env`, the one reader of the run
config; it writes nothing. Whoever drives it records the rows it returns and
adds what only the driver can know: the time the controller spent between steps
(`controller_time_s`) and the time spent writing checkpoints (`checkpoint_time_s`); see
`rlopt.run.runner`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from rlopt.engine import Trainer
from rlopt.env.actions import action_value
from rlopt.env.features import TrainingState
from rlopt.optim import OptimizerBank
from rlopt.rewards import RewardContext
from rlopt.task import Task


@dataclass
class EpisodeResult:
    """What the run needs after an episode: its status, its best-by-validation weights, and the model."""

    status: str  # completed | diverged
    trainer: Trainer
    best_state: dict
    best_epoch: float

    def evaluate_test(self, progress: bool = False) -> dict:
        """The test split at the best-by-validation weights (`progress`: with a bar over its batches)."""
        self.trainer.model.load_state_dict(self.best_state)
        test = self.trainer.data.test
        return self.trainer.evaluate(test, f"testing the best checkpoint on {len(test)} examples" if progress else None)


def _finite(x: float) -> bool:
    return math.isfinite(x)


class TrainingEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, task: Task, actions, features, reward, *, steps_per_action: int | None,
                 divergence_penalty: float):
        """`actions`: the action space object (`rlopt.env.actions`); `features`: the observation (`FeatureSet`);
        `reward`: the reward function (`rlopt.rewards`); a decision every `steps_per_action` optimizer steps
        (None: every epoch); a diverged run is paid -(p + U(0,1) p), p = `divergence_penalty`."""
        self.task = task
        self.actions, self.features, self.reward_fn = actions, features, reward
        self.action_space = self.actions.space
        self.observation_space = self.features.space
        self.steps_per_action = steps_per_action
        self.penalty = float(divergence_penalty)
        self.episodes_started = 0
        # an agent learning across an instance set: the Task a run seed draws (given by make_env), which a restored
        # checkpoint trains, as the run it was saved in did (each reset is handed its Task: `rlopt.instances.sampling`)
        self.run_tasks: Callable[[int], Task] | None = None
        self.trainer: Trainer | None = None
        self._resumed_scheduler: dict | None = None

    # -- the task ---------------------------------------------------------------------------------
    @property
    def data(self):
        return self.task.data

    @property
    def device(self) -> torch.device:
        return self.task.device

    @property
    def budget_steps(self) -> int:
        return self.task.budget_steps

    @property
    def batches_per_epoch(self) -> int:
        return self.task.batches_per_epoch

    @property
    def decisions_per_episode(self) -> int:
        if self.steps_per_action is not None:
            return -(-self.budget_steps // int(self.steps_per_action))
        return -(-self.budget_steps // self.batches_per_epoch)

    @property
    def episode(self) -> int:
        """The training run's number: run i trains with seed + i (the final run of `controller.episodes=N`
        is N, whether or not the agent's VecEnv reset once more after its last learning run)."""
        return self.run_seed - self.task.seed

    # -- gymnasium API ----------------------------------------------------------------------------
    def reset(self, *, seed=None, options=None):
        self._open(seed, options)
        return self._begin(self.trainer.evaluate(self.data.val)), {}

    def _open(self, seed, options) -> None:
        """The first half of `reset`: the run's model, optimizers and action state, built from its run seed."""
        super().reset(seed=seed)
        # A seeded reset trains with that seed, an unseeded one with the previous episode's + 1 (the first with
        # the task's seed: episode k trains with seed + k), so what follows a seeded reset repeats (gymnasium's
        # contract). options: `run_seed` overrides that; `task` trains another Task from this episode on.
        options = options or {}
        if "task" in options:
            self._switch_task(options["task"])
        if seed is not None:
            default = int(seed)
        else:
            default = self.task.seed if self.episodes_started == 0 else self.run_seed + 1
        run_seed = int(options.get("run_seed", default))
        if self._np_random is None:  # never seeded: the divergence penalty's draws follow the first run's seed, so the
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random(run_seed)  # same config repeats them
        self.episodes_started += 1
        self._build(run_seed)
        self.actions.reset(self.bank)

    def _begin(self, val: dict) -> np.ndarray:
        """The second half of `reset`: the episode's bests and first observation, from its first validation."""
        self.val = val
        self.best_loss = self.val["loss"]
        self.best_score = self.task.score(self.val)
        self._keep_best()
        self.best_epoch = 0.0
        self.decision = 0
        self.prev_action = None
        self.train_loss = self.val["loss"]
        self.grad_norm = 0.0
        self.status = "running"
        self.last_obs = self._observe(self.val)
        return self.last_obs

    def _build(self, run_seed: int) -> None:
        """A fresh model (initialised from `run_seed`), optimizer bank and trainer."""
        self.run_seed = run_seed
        model = self.task.build_model(run_seed)
        self.bank = OptimizerBank(lambda: self._param_groups(model), self.actions.optimizers, self.task.optim)
        self.trainer = self.task.trainer(model, self.bank, run_seed)

    def _switch_task(self, task: Task) -> None:
        """Train `task` from the next episode on (an instance set's next instance). The spaces stay as they are,
        so a task that would change them (the layer-wise env's layer count) is refused by the subclass."""
        self.task = task

    def attach_lr_scheduler(self, scheduler, interval: str) -> None:
        """Let the trainer step `scheduler` every optimizer step or epoch (see `Trainer.set_lr_scheduler`).

        After a resume the scheduler continues where the saved one stopped, and the optimizer's
        hyperparameters (lr, and momentum that OneCycle cycles) are put back as they were saved,
        undoing what constructing the new scheduler wrote into them.
        """
        self.trainer.set_lr_scheduler(scheduler, interval)
        if self._resumed_scheduler is not None:
            scheduler.load_state_dict(self._resumed_scheduler["scheduler"])
            self.bank.load_state_dict(self._resumed_scheduler["bank"])
            self._resumed_scheduler = None

    # -- checkpointing ------------------------------------------------------------------------------
    _STATE_FIELDS = ("episodes_started", "val", "best_loss", "best_score", "best_state", "best_epoch", "decision",
                     "prev_action", "train_loss", "grad_norm", "status", "last_obs")

    def state_dict(self) -> dict:
        """Everything needed to continue this episode exactly: model, optimizers, batch order, bests."""
        state = {name: getattr(self, name) for name in self._STATE_FIELDS}
        state.update(run_seed=self.run_seed, model=self.trainer.model.state_dict(), bank=self.bank.state_dict(),
                     trainer=self.trainer.state_dict(), actions=self.actions.state_dict(),
                     np_random=self.np_random.bit_generator.state)
        return state

    def load_state_dict(self, state: dict) -> None:
        if self.run_tasks is not None:  # the instance its run in progress drew, not the task the env was built with
            self._switch_task(self.run_tasks(state["run_seed"]))
        self._build(state["run_seed"])
        self.trainer.model.load_state_dict(state["model"])
        self.bank.load_state_dict(state["bank"])
        self.trainer.load_state_dict(state["trainer"])
        self.actions.load_state_dict(state["actions"])
        for name in self._STATE_FIELDS:
            setattr(self, name, state[name])
        self.np_random.bit_generator.state = state["np_random"]
        # A scheduler is re-attached by its controller after this; keep what it needs to continue.
        scheduler = state["trainer"]["lr_scheduler"]
        self._resumed_scheduler = {"scheduler": scheduler, "bank": state["bank"]} if scheduler is not None else None

    def result(self) -> EpisodeResult | None:
        """The episode's result once it has ended (None before): its status, best-by-validation weights and
        trainer. Ask at once: the next reset starts another episode."""
        if self.trainer is None or self.status == "running":
            return None
        return EpisodeResult(self.status, self.trainer, self.best_state, self.best_epoch)

    def step(self, action):
        started = time.perf_counter()
        steps = self._act(action)
        evals_before = self.trainer.grad_evals
        stats = self.trainer.train(steps)
        val = self.trainer.evaluate(self.data.val)
        return self._conclude(action, stats, val, time.perf_counter() - started, evals_before)

    def _act(self, action) -> int:
        """The first part of `step`: apply `action`; returns how many optimizer steps the decision step takes."""
        if self.trainer is None or self.status != "running":
            raise RuntimeError("step() called before reset() or after the episode ended")
        tr = self.trainer
        self.actions.apply(action, self.bank)
        chunk = int(self.steps_per_action) if self.steps_per_action is not None else tr.steps_left_in_epoch()
        return min(chunk, self.budget_steps - tr.opt_steps)

    def _conclude(self, action, stats, val: dict, step_time: float, evals_before: int):
        """The last part of `step`, after training (`stats`) and validation (`val`): divergence, reward, the
        metrics row, the bests and the next observation; returns what `step` returns."""
        tr = self.trainer
        # diverged: a non-finite loss, gradient or weight (each checked exactly: see the Trainer)
        diverged = not (_finite(stats.train_loss) and _finite(stats.grad_norm) and _finite(val["loss"])
                        and tr.weights_finite())
        done = diverged or tr.opt_steps >= self.budget_steps
        epochs_left = (self.budget_steps - tr.opt_steps) / self.batches_per_epoch
        if diverged:
            reward = -(self.penalty + float(self.np_random.uniform()) * self.penalty)
        else:
            reward = self.reward_fn(RewardContext(
                prev_loss=self.val["loss"], loss=val["loss"], prev_acc=self.val.get("acc"), acc=val.get("acc"),
                step_time=step_time, step_grad_evals=tr.grad_evals - evals_before,
                batches_per_epoch=self.batches_per_epoch, best_loss_before=self.best_loss, epochs_left=epochs_left,
                last=done,
            ))
        self.decision += 1
        if not diverged:
            self._track_best(val, tr.epochs_done)
        row = {
            "episode": self.episode,
            "epoch": round(tr.epochs_done, 4),
            "step": self.decision,
            "action": action_value(action),
            "optimizer": self.bank.active,
            "lr": stats.lr,
            "train_loss": stats.train_loss,
            "val_loss": val["loss"],
            "val_acc": val.get("acc"),
            "val_precision": val.get("precision"),
            "val_recall": val.get("recall"),
            "val_f1": val.get("f1"),
            "reward": float(reward),
            "epoch_time_s": step_time,
            "grad_evals": tr.grad_evals,
            "opt_steps": tr.opt_steps,
            "grad_norm": stats.grad_norm,
            "diverged": diverged,
        }
        self.prev_action = row["action"]
        self.train_loss, self.grad_norm = stats.train_loss, stats.grad_norm
        prev_val, self.val = self.val, val
        if done:
            self.status = "diverged" if diverged else "completed"
        self.last_obs = self._observe(val, prev_val)
        return self.last_obs, float(reward), done, False, {"metrics": row}

    # -- what a subclass may change (the layer-wise env does) --------------------------------------
    def _param_groups(self, model):
        """What each optimizer is built over: every parameter in one group (one learning rate)."""
        return model.parameters()

    # -- helpers ----------------------------------------------------------------------------------
    def _keep_best(self) -> None:
        """Keep a copy of the current weights as the run's best (a population member keeps it in its row of the
        population's best weights instead: `MemberEnv`)."""
        self.best_state = {k: v.detach().clone() for k, v in self.trainer.model.state_dict().items()}

    def _track_best(self, val: dict, epoch: float) -> None:
        self.best_loss = min(self.best_loss, val["loss"])
        score = self.task.score(val)
        if score > self.best_score:
            self.best_score, self.best_epoch = score, epoch
            self._keep_best()

    def _observe(self, val: dict, prev: dict | None = None) -> np.ndarray:
        return self.features(self._training_state(val, prev))

    def _training_state(self, val: dict, prev: dict | None = None) -> TrainingState:
        prev = prev or val
        tr = self.trainer
        return TrainingState(
            val_loss=val["loss"], prev_val_loss=prev["loss"], val_acc=val.get("acc"), prev_val_acc=prev.get("acc"),
            train_loss=self.train_loss, grad_norm=self.grad_norm, lr=self.bank.lr, best_val_loss=self.best_loss,
            progress=tr.opt_steps / self.budget_steps,
            epochs_left=(self.budget_steps - tr.opt_steps) / self.batches_per_epoch,
            prev_action=self.prev_action,
        )
