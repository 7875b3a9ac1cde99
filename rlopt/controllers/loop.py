"""The one episode loop shared by every controller that is not learning inside SB3's `learn()`."""

from __future__ import annotations

from typing import Callable

from rlopt.checkpoint import restore_rng


def run_episode(env, policy: Callable, save: Callable[[], None], options: dict | None = None,
                resume: dict | None = None, on_start: Callable | None = None) -> None:
    """Act with `policy(obs)` until the episode ends, checkpointing (`save`) after every step.

    A fresh episode starts with `env.reset`; a resumed one (`resume` = the loaded checkpoint, whose
    environment state is already restored) continues from the last observation with the RNGs as
    they were when that checkpoint was written. `on_start(env)` runs before the first step either
    way (e.g. to attach an lr scheduler to the episode's trainer).
    """
    if resume is None:
        obs, _ = env.reset(options=options)
    else:
        obs = env.last_obs
    if on_start is not None:
        on_start(env)
    if resume is not None:
        restore_rng(resume["rng"])
    while env.status == "running":
        obs, *_ = env.step(policy(obs))
        save()
