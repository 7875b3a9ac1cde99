"""The live view: every metrics row of a run as TensorBoard scalars, in the run's `tb/` folder.

`TensorBoardRows` is a row observer (see `rlopt.run.runner.Runner`): it receives each row of
`metrics.csv` right after it is written and adds it to `tb/` as namespaced scalars at the row's
decision `step` (`val/acc`, `val/loss`, `train/loss`, `control/lr`, `control/optimizer` (the index of
the optimizer in the controller's list), `reward`, ...), flushed at once so `tensorboard --logdir outputs`
shows runs while they train. SB3 agents write their own learning logs beside it (`tb/agent_1/`), and
the rows of the training runs an agent learns from (`learning_metrics.csv`, `controller.episodes=N`)
go to one TensorBoard run each, `tb/learning/run_<iii>/` (the row's `episode`, 3 digits), with the same tags at
the run's own steps, so the learning runs can be watched side by side, K at a time with `n_envs=K`.

The event files are a view, not a record: metrics.csv stays the source of truth. After a resume,
the steps between the last checkpoint and the interruption are written again (a second event
file in `tb/`); TensorBoard's readers show the last value written for a step, which is the
resumed run's. Nothing in the event files feeds back into the run, its summary or `rlopt report`.
"""

from __future__ import annotations

import math
from pathlib import Path

# metrics.csv column -> scalar tag (control/optimizer is derived from the `optimizer` name)
TAGS = {
    "val_acc": "val/acc", "val_loss": "val/loss", "val_precision": "val/precision", "val_recall": "val/recall",
    "val_f1": "val/f1", "train_loss": "train/loss", "grad_norm": "train/grad_norm", "lr": "control/lr",
    "action": "control/action", "reward": "reward", "epoch": "progress/epoch", "opt_steps": "progress/opt_steps",
    "grad_evals": "progress/grad_evals", "epoch_time_s": "time/step_s", "controller_time_s": "time/controller_s",
    "checkpoint_time_s": "time/checkpoint_s",
}


class TensorBoardRows:
    """Observer writing each metrics row to TensorBoard event files in `log_dir` (`optimizers`: the names
    whose index `control/optimizer` plots); `learning` is the observer of the learning runs' rows.
    `close()` when the run ends."""

    def __init__(self, log_dir: Path, optimizers: list[str]):
        from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only for runs that log

        self.writer_class = SummaryWriter  # kept: tensorboard is imported only here
        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(str(log_dir))
        self.optimizers = list(optimizers)
        self.learning_runs: dict[int, tuple[int, object]] = {}  # sub-environment -> (its current run, its writer)

    def __call__(self, row: dict) -> None:
        self._write(self.writer, row)

    def learning(self, row: dict) -> None:
        """A learning run's row, into `learning/run_<episode>/`. A sub-environment runs one run at a time, so
        its previous run's writer is closed when its next run begins: at most K files are open."""
        env, run = int(row.get("env", 0)), int(row["episode"])
        current = self.learning_runs.get(env)
        if current is None or current[0] != run:
            if current is not None:
                current[1].close()
            current = self.learning_runs[env] = (run, self.writer_class(str(self.log_dir / "learning" / f"run_{run:03d}")))
        self._write(current[1], row)

    def _write(self, writer, row: dict) -> None:
        step = int(row["step"])
        for column, tag in TAGS.items():
            value = row.get(column)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                writer.add_scalar(tag, value, step)
        if row.get("optimizer") in self.optimizers:
            writer.add_scalar("control/optimizer", self.optimizers.index(row["optimizer"]), step)
        writer.flush()

    def close(self) -> None:
        self.writer.close()
        for _, writer in self.learning_runs.values():
            writer.close()


def tensorboard_rows(cfg, run_dir: Path, env) -> TensorBoardRows | None:
    """The run's TensorBoard observer, or None with `trainer.tensorboard=false`."""
    if not cfg.trainer.tensorboard:
        return None
    return TensorBoardRows(Path(run_dir) / "tb", env.actions.optimizers)
