"""The model zoo: ResNet-18 (CIFAR and ImageNet layouts), small CNNs, MLPs.

ResNet-18 reuses torchvision's implementation; the CIFAR layout only swaps the stem for a
3x3 stride-1 convolution and drops the max-pool, as in the CIFAR literature.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from rlopt.config import instantiate_node, option, options
from rlopt.errors import UserError


class ShapeMismatch(ValueError):
    """A builder cannot serve this input shape; `build_model` names the model and the dataset."""


def _images(shape, min_side: int = 1) -> None:
    if len(shape) != 3:
        raise ShapeMismatch("needs image inputs")
    if min(shape[1:]) < min_side:
        raise ShapeMismatch(f"needs images of at least {min_side}x{min_side}")


def _resnet18(channels: int, outputs: int, cifar_stem: bool) -> nn.Module:
    import torchvision

    net = torchvision.models.resnet18(weights=None, num_classes=outputs)
    if cifar_stem:
        net.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif channels != 3:
        net.conv1 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return net


def _flat_size(features: nn.Module, shape) -> int:
    with torch.no_grad():
        return features(torch.zeros(1, *shape)).flatten(1).shape[1]


# The builders the model configs name as `_target_`: each takes (input_shape, outputs, **the config's other keys).

def resnet18(shape, outputs: int) -> nn.Module:
    """CIFAR layout: 3x3 stride-1 stem, no max-pool."""
    _images(shape)
    return _resnet18(shape[0], outputs, cifar_stem=True)


def resnet18_imagenet(shape, outputs: int) -> nn.Module:
    """torchvision's layout; only the stem's input channels follow the data."""
    _images(shape)
    return _resnet18(shape[0], outputs, cifar_stem=False)


def small_cnn(shape, outputs: int, dropout: bool) -> nn.Module:
    """PyTorch examples' MNIST net; the first linear layer is sized for any input resolution."""
    _images(shape, min_side=6)
    features = nn.Sequential(
        nn.Conv2d(shape[0], 32, 3, 1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, 1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Dropout(0.25 if dropout else 0.0),
        nn.Flatten(),
    )
    return nn.Sequential(
        features,
        nn.Linear(_flat_size(features, shape), 128), nn.ReLU(),
        nn.Dropout(0.5 if dropout else 0.0),
        nn.Linear(128, outputs),
    )


def digits_cnn(shape, outputs: int) -> nn.Module:
    """Two padded 3x3 convolutions and one pool: keeps 8x8 digits at 4x4 before the classifier."""
    _images(shape)
    features = nn.Sequential(
        nn.Conv2d(shape[0], 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
    )
    return nn.Sequential(features, nn.Linear(_flat_size(features, shape), 128), nn.ReLU(), nn.Linear(128, outputs))


def mlp(shape, outputs: int, hidden) -> nn.Module:
    """Fully connected ReLU layers of widths `hidden` on the flattened input."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(shape)
    for h in hidden:
        layers += [nn.Linear(width, int(h)), nn.ReLU()]
        width = int(h)
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)


def model_name(name: str, dataset_name: str) -> str:
    """The model option `name` stands for: `auto` is the dataset config's `default_model` (stays `auto` for a
    dataset without a config, so a failed run's record never fails itself)."""
    if name != "auto" or dataset_name not in options("dataset"):
        return name
    return option("dataset", dataset_name).default_model


class ModelBuilder:
    """The model a config describes, resolved once (option lookup and Hydra's instantiate take milliseconds, the
    build of a small MLP tens of microseconds): `builder(input_shape, outputs)` builds a fresh model. A population
    builds one per member run, so a Task keeps its builder (`Task.new_model`)."""

    def __init__(self, cfg, dataset_name: str):
        name = model_name(cfg.name, dataset_name)
        if name == "auto":
            raise UserError(f"model=auto needs a dataset config naming its default_model; dataset={dataset_name} has "
                            f"none: choose a model ({', '.join(options('model'))})")
        self.name, self.dataset_name = name, dataset_name
        self.factory = instantiate_node(cfg if name == cfg.name else option("model", name), "model")

    def __call__(self, input_shape, outputs: int) -> nn.Module:
        try:
            return self.factory(tuple(input_shape), outputs)
        except ShapeMismatch as err:
            has = "feature vectors" if len(input_shape) != 3 else "x".join(map(str, input_shape[1:])) + " images"
            hint = "; use model=maclaurin or model=mlp" if len(input_shape) != 3 else ""
            raise UserError(f"model={self.name} {err}, but dataset={self.dataset_name} has {has}{hint}") from None


def build_model(cfg, dataset_name: str, input_shape, outputs: int) -> nn.Module:
    """Build the model `cfg` describes (its `_target_`) for this input shape and output size.

    `model=auto` builds the dataset's `default_model` option.
    """
    return ModelBuilder(cfg, dataset_name)(input_shape, outputs)
