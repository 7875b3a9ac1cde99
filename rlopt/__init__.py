"""rlopt: reinforcement-learning controllers of neural-network training, driven by Hydra configs."""

__version__ = "0.1.0"
