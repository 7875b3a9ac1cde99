"""`tune.*` checked before any trial runs, and `tune.space` as Optuna distributions."""

from __future__ import annotations

import math

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from rlopt.errors import UserError

METRICS = {"val_loss": "minimize", "val_acc": "maximize"}


def _positive_int(value, key: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{key}={value} is not allowed: use an integer >= {minimum}")
    return value


def _number(value, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{key}={value} is not allowed: use a finite number")
    return value


def _leaves(node, prefix: str = ""):
    """(dotted config key, its {low, high, log} or {choices} spec) for every leaf of tune.space."""
    for key, value in node.items():
        path = f"{prefix}{key}"
        if not OmegaConf.is_dict(value):
            raise UserError(f"tune.space.{path}={value} is not allowed: give {{low, high, log}} or {{choices: [...]}}")
        if "choices" in value or any(k in value and not OmegaConf.is_dict(value[k]) for k in ("low", "high")):
            yield path, value
        else:
            yield from _leaves(value, f"{path}.")


def baseline_lr_key(cfg: DictConfig) -> str | None:
    """The config key of the learning rate a baseline trains with: `controller.lr` for a schedule,
    `optim.<name>.lr` for a fixed baseline (controller=sgd trains with optim.sgd.lr); None for the others."""
    controller = cfg.controller
    if controller.type == "schedule":
        return "controller.lr"
    if controller.type == "fixed":
        return f"optim.{controller.actions.choices[controller.action]}.lr"
    return None


def search_space(cfg: DictConfig) -> dict[str, optuna.distributions.BaseDistribution]:
    """tune.space as Optuna distributions, keyed by the config key each one sets. `controller.lr`, the
    default space's key, stands for the baseline's learning rate: `optim.<name>.lr` for a fixed baseline."""
    space = {}
    lr_key = baseline_lr_key(cfg)
    for key, spec in _leaves(cfg.tune.space or {}):
        name = f"tune.space.{key}"
        if key == "controller.lr" and lr_key is not None:
            key = lr_key
        current = OmegaConf.select(cfg, key, default=KeyError)
        if current is KeyError or key.split(".")[0] in ("tune", "hydra"):
            example = lr_key or "trainer.batch_size"
            raise UserError(f"{name}: {key} is not a key of the run's config (e.g. tune.space.{example})")
        unknown = set(spec) - ({"choices"} if "choices" in spec else {"low", "high", "log"})
        if unknown:
            raise UserError(f"{name} has {', '.join(sorted(unknown))}: use {{low, high, log}} or {{choices: [...]}}")
        if "choices" in spec:
            choices = spec.choices
            if not OmegaConf.is_list(choices) or len(choices) == 0:
                raise UserError(f"{name}.choices={choices} is not allowed: give a non-empty list")
            space[key] = CategoricalDistribution(list(OmegaConf.to_container(choices)))
            continue
        if "low" not in spec or "high" not in spec:
            raise UserError(f"{name} needs both low and high")
        low, high = _number(spec.low, f"{name}.low"), _number(spec.high, f"{name}.high")
        log_scale = spec.get("log", False)
        if not isinstance(log_scale, bool):
            raise UserError(f"{name}.log={log_scale} is not allowed: use true or false")
        if low >= high:
            raise UserError(f"{name}: low={low} >= high={high}; low must be below high")
        if log_scale and low <= 0:
            raise UserError(f"{name}.low={low} is not allowed with log: true; use a value > 0")
        is_int = isinstance(current, int) and not isinstance(current, bool)
        if is_int and not (float(low).is_integer() and float(high).is_integer()):
            raise UserError(f"{name}: {key} is an integer; give integer low and high")
        space[key] = (IntDistribution(int(low), int(high), log=log_scale) if is_int
                      else FloatDistribution(float(low), float(high), log=log_scale))
    if not space:
        raise UserError("tune.space is empty: give at least one key, e.g. tune.space.controller.lr={low:1e-5,high:1,log:true}")
    return space


def validate_tune(cfg: DictConfig) -> dict:
    """Every tune.* value checked before any trial runs; returns the search space."""
    t = cfg.tune
    _positive_int(t.n_trials, "tune.n_trials")
    if t.metric not in METRICS:
        raise UserError(f"tune.metric={t.metric} is not allowed: use {' or '.join(METRICS)}")
    _positive_int(t.worker, "tune.worker", minimum=0)
    _positive_int(t.seed, "tune.seed", minimum=0)
    _positive_int(t.pruner.min_resource, "tune.pruner.min_resource")
    _positive_int(t.pruner.reduction_factor, "tune.pruner.reduction_factor", minimum=2)
    _positive_int(t.heartbeat.interval, "tune.heartbeat.interval")
    if _positive_int(t.heartbeat.grace, "tune.heartbeat.grace") <= t.heartbeat.interval:
        raise UserError(f"tune.heartbeat.grace={t.heartbeat.grace} is not allowed: use more than tune.heartbeat.interval")
    if not OmegaConf.is_list(t.final_seeds) or not t.final_seeds:
        raise UserError(f"tune.final_seeds={t.final_seeds} is not allowed: give a non-empty list of seeds")
    for seed in t.final_seeds:
        _positive_int(seed, "tune.final_seeds[]", minimum=0)
    if t.budget_grad_evals is not None:
        _positive_int(t.budget_grad_evals, "tune.budget_grad_evals")
    if not isinstance(cfg.final, bool):
        raise UserError(f"final={cfg.final} is not allowed: use true or false")
    return search_space(cfg)


