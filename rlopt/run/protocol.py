"""What a controller is, to the runner that drives it, and what it sees of the run.

Import-free on purpose (standard library only): a controller written against these protocols, or a tool
that only inspects them, loads neither torch nor an RL library. The runner (`rlopt.run.runner`) drives
any object that has these methods; subclass `Controller` for the no-op defaults.

A controller sees the run through `RunContext` only: where it may write (the run folder, the TensorBoard
folder), a callable that records rows stepped elsewhere, and the run's config. It never holds the runner,
so what a run writes, and when, stays the runner's business.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class RunContext:
    """What a controller may use of the run it controls (given to `Controller.setup`)."""

    run_dir: Path
    """The run folder: where `finish` writes what the controller leaves behind (a policy)."""
    tb_dir: Path | None
    """Where an agent writes its learning logs (TensorBoard); None with `trainer.tensorboard=false`."""
    record_rows: Callable[[Sequence[dict], float], None]
    """Record the step infos of sub-environments stepped together in other processes (each info's
    `metrics` row, in order) with the seconds the agent spent choosing their actions; the rows of the
    environment the controller is given are recorded without it."""
    config: Mapping[str, Any]
    """The run's config, as run: what worker processes build their own environments from."""


class Controller(Protocol):
    """What the runner drives. Subclass it for the no-op defaults; only `act` is required."""

    def setup(self, env, state: dict | None, context: RunContext) -> None:
        """Prepare to act in `env` (check it fits, seed, build); `state` is this controller's
        `state_dict()` from the checkpoint being resumed, None for a fresh run."""

    def act(self, obs):
        """The action for observation `obs`."""
        ...

    def start_episode(self, env) -> None:
        """Called after each episode's reset (or its restore, on resume), before the first step."""

    def episode_options(self) -> dict | None:
        """`options` for the reset of the controlled episode (e.g. its `run_seed`)."""
        return None

    def state_dict(self) -> dict:
        """What a checkpoint keeps of the controller; called only when one is written."""
        return {}

    def finish(self, env, run_dir: Path) -> None:
        """After the controlled episode: write what the controller leaves behind (a trained policy)."""

    def summary(self) -> dict:
        """Keys the controller adds to summary.json (an agent: how it learned)."""
        return {}


@runtime_checkable
class Agent(Controller, Protocol):
    """A controller that learns in its library's own loop before (or while) it controls the run.

    `episodes` = 0: it learns online while controlling the one recorded run (`metrics.csv`);
    N > 0: it learns over N runs (`learning_metrics.csv`), then controls a final run."""

    episodes: int

    @property
    def learned(self) -> bool:
        """Whether learning is over (a run resumed in its final episode)."""
        ...

    def learn(self, env, save: Callable[[], None]) -> None:
        """Learn until its learning episodes are done, stepping `env`; call `save()` wherever a
        checkpoint may be written."""
        ...
