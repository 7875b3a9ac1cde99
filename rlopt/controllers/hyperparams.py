"""An SB3 agent's hyperparameters (`controller.hyperparams`), checked before any data is read.

Stable-Baselines3 checks few of its keyword arguments when an agent is built, and some only once
it learns, mid-run: DQN's `batch_size=-5` fails at its first gradient step, `train_freq=0` never
collects a step. So every key is checked here against the algorithm's own signature (whatever
SB3 version is installed) and the numeric ones against their ranges, each failure one line.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from omegaconf import OmegaConf

from rlopt.errors import UserError

# keyword arguments rlopt passes itself: setting them in hyperparams is a mistake
RLOPT_PASSES = ("self", "policy", "env", "seed", "device", "verbose")


def _int(value, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _train_freq(value) -> bool:
    if isinstance(value, (list, tuple)):
        return len(value) == 2 and _int(value[0], 1) and value[1] in ("step", "episode")
    return _int(value, 1)


# key -> (check, what is allowed); keys absent here (policy_kwargs, booleans SB3 reads as flags) pass as given
RANGES: dict[str, tuple[Callable[[object], bool], str]] = {
    "learning_rate": (lambda v: _number(v) and v > 0, "a number > 0"),
    "batch_size": (lambda v: _int(v, 1), "a positive integer"),
    "buffer_size": (lambda v: _int(v, 1), "a positive integer"),
    "n_steps": (lambda v: _int(v, 1), "a positive integer"),
    "n_epochs": (lambda v: _int(v, 1), "a positive integer"),
    "target_update_interval": (lambda v: _int(v, 1), "a positive integer"),
    "stats_window_size": (lambda v: _int(v, 1), "a positive integer"),
    "learning_starts": (lambda v: _int(v, 0), "an integer >= 0"),
    "gradient_steps": (lambda v: _int(v, 1) or v == -1, "a positive integer, or -1 (as many as steps collected)"),
    "train_freq": (_train_freq, "a positive integer, or [N, step|episode]"),
    "gamma": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "gae_lambda": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "tau": (lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "exploration_fraction": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "exploration_initial_eps": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "exploration_final_eps": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "clip_range": (lambda v: _number(v) and v > 0, "a number > 0"),
    "clip_range_vf": (lambda v: v is None or (_number(v) and v > 0), "null or a number > 0"),
    "target_kl": (lambda v: v is None or (_number(v) and v > 0), "null or a number > 0"),
    "max_grad_norm": (lambda v: _number(v) and v > 0, "a number > 0"),
    "ent_coef": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "vf_coef": (lambda v: _number(v) and v >= 0, "a number >= 0"),
}


def check_hyperparams(algo: type, name: str, hyperparams) -> None:
    """Refuse a key `algo` (an SB3 algorithm class, `name` its config name) does not take, and a value out of range."""
    params = OmegaConf.to_container(hyperparams, resolve=True) if OmegaConf.is_config(hyperparams) else dict(hyperparams)
    allowed = [p for p in inspect.signature(algo.__init__).parameters if p not in RLOPT_PASSES and not p.startswith("_")]
    for key, value in params.items():
        if key not in allowed:
            raise UserError(f"controller.hyperparams.{key} is not a {name} hyperparameter; available: {', '.join(allowed)}")
        check, what = RANGES.get(key, (lambda _: True, ""))
        if not check(value):
            raise UserError(f"controller.hyperparams.{key}={value} is not allowed: use {what}")
