"""rlopt: reinforcement-learning controllers of neural-network training, driven by Hydra configs."""

__version__ = "0.1.0"

from rlopt import startup as _startup

_startup.guard()  # a Ctrl-C while the command starts (the imports below and the CLI's) is one line, not a traceback

from rlopt.schema import register as _register_schemas  # noqa: E402  (after the guard: it imports Hydra)

_register_schemas()  # before any command composes its config: the YAML in conf/ names these schemas
