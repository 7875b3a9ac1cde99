"""Model builders, named by each model config's `_target_`; input channels and output size follow the dataset."""

from rlopt.models.zoo import ModelBuilder, build_model, model_name

__all__ = ["ModelBuilder", "build_model", "model_name"]
