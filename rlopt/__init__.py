"""rlopt: reinforcement-learning controllers of neural-network training, driven by Hydra configs."""

__version__ = "0.1.0"

from rlopt.schema import register as _register_schemas

_register_schemas()  # before any command composes its config: the YAML in conf/ names these schemas
