"""The one episode loop shared by every controller that is not learning inside SB3's `learn()`."""

from __future__ import annotations

from typing import Callable


def run_episode(env, policy: Callable, options: dict | None = None) -> None:
    """Reset `env`, then act with `policy(obs)` until the episode ends."""
    obs, _ = env.reset(options=options)
    done = False
    while not done:
        obs, _, terminated, truncated, _ = env.step(policy(obs))
        done = terminated or truncated
