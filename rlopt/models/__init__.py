"""Model builders, chosen by `model.name`; input channels and output size follow the dataset."""

from rlopt.models.zoo import AUTO_MODEL, build_model, model_name

__all__ = ["AUTO_MODEL", "build_model", "model_name"]
