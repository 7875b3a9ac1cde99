"""The model zoo: ResNet-18 (CIFAR and ImageNet layouts), small CNNs, MLPs.

ResNet-18 reuses torchvision's implementation; the CIFAR layout only swaps the stem for a
3x3 stride-1 convolution and drops the max-pool, as in the CIFAR literature.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from rlopt.errors import UserError

# model=auto resolves to the model that suits each dataset.
AUTO_MODEL = {
    "digits": "digits_cnn",
    "mnist": "small_cnn",
    "fashion_mnist": "small_cnn",
    "cifar10": "resnet18",
    "cifar100": "resnet18",
    "polynomial": "maclaurin",
}


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


def _small_cnn(shape, outputs: int, dropout: bool = True) -> nn.Module:
    """PyTorch examples' MNIST net; the first linear layer is sized for any input resolution."""
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


def _digits_cnn(shape, outputs: int) -> nn.Module:
    """Two padded 3x3 convolutions and one pool: keeps 8x8 digits at 4x4 before the classifier."""
    features = nn.Sequential(
        nn.Conv2d(shape[0], 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
    )
    return nn.Sequential(features, nn.Linear(_flat_size(features, shape), 128), nn.ReLU(), nn.Linear(128, outputs))


def _mlp(shape, outputs: int, hidden) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(shape)
    for h in hidden:
        layers += [nn.Linear(width, int(h)), nn.ReLU()]
        width = int(h)
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)


def model_name(name: str, dataset_name: str) -> str:
    """The concrete model `name` stands for (`auto` picks the dataset's default)."""
    return AUTO_MODEL.get(dataset_name, "mlp") if name == "auto" else name


def build_model(cfg, dataset_name: str, input_shape, outputs: int) -> nn.Module:
    """Build `cfg.name` (or the dataset's default for `auto`) for this input shape and output size."""
    name = model_name(cfg.name, dataset_name)
    images = len(input_shape) == 3
    if name in ("resnet18", "resnet18_imagenet", "small_cnn", "digits_cnn") and not images:
        raise UserError(f"model={name} needs image inputs, but dataset={dataset_name} has feature vectors; use model=maclaurin or model=mlp")
    if name == "resnet18":
        return _resnet18(input_shape[0], outputs, cifar_stem=True)
    if name == "resnet18_imagenet":
        return _resnet18(input_shape[0], outputs, cifar_stem=False)
    if name == "small_cnn":
        if min(input_shape[1:]) < 6:
            raise UserError(f"model=small_cnn needs images of at least 6x6, dataset={dataset_name} has {input_shape[1]}x{input_shape[2]}")
        return _small_cnn(input_shape, outputs, bool(cfg.get("dropout", True)))
    if name == "digits_cnn":
        return _digits_cnn(input_shape, outputs)
    if name in ("maclaurin", "mlp"):
        return _mlp(input_shape, outputs, cfg.get("hidden", [32, 16]))
    raise UserError(f"model.name={name} is unknown; available: auto, resnet18, resnet18_imagenet, small_cnn, digits_cnn, maclaurin, mlp")
