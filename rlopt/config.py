"""Up-front checks of a composed config: every bad value fails before any training starts,
with one line naming the key and what is allowed."""

from __future__ import annotations

from rlopt.errors import UserError


def _positive_int(value, key: str, allow_null: bool = False) -> None:
    if value is None and allow_null:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        allowed = "null or a positive integer" if allow_null else "a positive integer"
        raise UserError(f"{key}={value} is not allowed: use {allowed}")


def _positive(value, key: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise UserError(f"{key}={value} is not allowed: it must be a number > 0")


def validate_train(cfg) -> None:
    """Check the keys a training run depends on (dataset sizes are checked when the data is read)."""
    t = cfg.trainer
    _positive_int(t.epochs, "trainer.epochs")
    _positive_int(t.max_steps, "trainer.max_steps", allow_null=True)
    _positive_int(t.batch_size, "trainer.batch_size")
    _positive_int(t.eval_batch_size, "trainer.eval_batch_size")
    _positive_int(t.threads, "trainer.threads", allow_null=True)
    if t.device not in ("auto", "cpu", "cuda"):
        raise UserError(f"trainer.device={t.device} is not allowed: use auto, cpu or cuda")
    if t.amp not in ("auto", True, False):
        raise UserError(f"trainer.amp={t.amp} is not allowed: use auto, true or false")
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool) or cfg.seed < 0:
        raise UserError(f"seed={cfg.seed} is not allowed: use a non-negative integer")
    for name in ("sgd", "adam", "adadelta"):
        _positive(cfg.optim[name].lr, f"optim.{name}.lr")
    _positive(cfg.optim.sam.rho, "optim.sam.rho")
    momentum = cfg.optim.sgd.momentum
    if not 0 <= momentum < 1:
        raise UserError(f"optim.sgd.momentum={momentum} is not allowed: use a value in [0, 1)")
    _positive_int(cfg.env.steps_per_action, "env.steps_per_action", allow_null=True)
    _positive_int(cfg.dataset.val_size, "dataset.val_size")
    _positive_int(cfg.dataset.get("train_subset"), "dataset.train_subset", allow_null=True)
    _positive_int(cfg.dataset.get("test_subset"), "dataset.test_subset", allow_null=True)
    if cfg.env.divergence_penalty < 0:
        raise UserError(f"env.divergence_penalty={cfg.env.divergence_penalty} is not allowed: use a value >= 0")
