"""The one episode loop shared by every controller that is not learning inside SB3's `learn()`."""

from __future__ import annotations

from typing import Callable


def run_episode(env, policy: Callable, options: dict | None = None, on_reset: Callable | None = None) -> None:
    """Reset `env`, call `on_reset(env)` (e.g. to attach an lr scheduler to the fresh trainer),
    then act with `policy(obs)` until the episode ends."""
    obs, _ = env.reset(options=options)
    if on_reset is not None:
        on_reset(env)
    done = False
    while not done:
        obs, _, terminated, truncated, _ = env.step(policy(obs))
        done = terminated or truncated
