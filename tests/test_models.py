"""rlopt.models: every model config builds for every dataset shape it suits, with the published layouts."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from omegaconf import OmegaConf
from torch import nn

from conftest import make_cfg
from rlopt.errors import UserError
from rlopt.models import build_model
from rlopt.paths import conf_dir

# Input shape and outputs of every dataset the runner knows.
DATASET_SHAPES = {
    "digits": ((1, 8, 8), 10),
    "mnist": ((1, 28, 28), 10),
    "fashion_mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
    "polynomial": ((20,), 5),
}
# One dataset per distinct input shape (fashion_mnist is mnist's shape, cifar100 is cifar10's).
SHAPE_DATASETS = ["digits", "mnist", "cifar10", "polynomial"]
MODEL_CONFIGS = sorted(p.stem for p in (Path(conf_dir()) / "model").glob("*.yaml"))
IMAGE_MODELS = {"resnet18", "resnet18_imagenet", "small_cnn", "digits_cnn"}


@cache
def model_cfg(name: str, *overrides: str):
    return make_cfg(f"model={name}", *overrides, tiny=False).model


def model(name: str, dataset: str, **overrides) -> nn.Module:
    """A freshly built model `name` for `dataset`'s input shape and outputs."""
    shape, outputs = DATASET_SHAPES[dataset]
    return build_model(model_cfg(name, *(f"model.{k}={v}" for k, v in overrides.items())), dataset, shape, outputs)


@cache
def built(name: str, dataset: str) -> nn.Module:
    """The model built once and shared by the tests that only inspect it (ResNets take a while to build)."""
    return model(name, dataset).eval()


def compatible(name: str, dataset: str) -> bool:
    return name not in IMAGE_MODELS or len(DATASET_SHAPES[dataset][0]) == 3


def test_every_model_config_is_known_here():
    assert set(MODEL_CONFIGS) == IMAGE_MODELS | {"auto", "maclaurin", "mlp"}


@pytest.mark.parametrize("dataset", SHAPE_DATASETS)
@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_model_builds_and_outputs_one_row_per_example(name, dataset):
    if not compatible(name, dataset):
        with pytest.raises(UserError, match=rf"model={name} needs image inputs.*dataset={dataset}"):
            model(name, dataset)
        return
    net = built(name, dataset)
    shape, outputs = DATASET_SHAPES[dataset]
    with torch.no_grad():
        out = net(torch.randn(2, *shape))
    assert out.shape == (2, outputs) and bool(out.isfinite().all())


def test_auto_picks_the_datasets_usual_model():
    defaults = {dataset: make_cfg(f"dataset={dataset}", tiny=False).dataset.default_model for dataset in DATASET_SHAPES}
    assert defaults == {"digits": "digits_cnn", "mnist": "small_cnn", "fashion_mnist": "small_cnn",
                        "cifar10": "resnet18", "cifar100": "resnet18", "polynomial": "maclaurin"}
    for dataset in SHAPE_DATASETS:
        assert str(built("auto", dataset)) == str(built(defaults[dataset], dataset))
    assert built("auto", "cifar10").fc.out_features == 10
    assert model("auto", "cifar100").fc.out_features == 100


def feature_map_sizes(net: nn.Module, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Output shape of each ResNet stage for input x."""
    sizes, hooks = {}, []
    for stage in ("conv1", "maxpool", "layer1", "layer4"):
        hooks.append(getattr(net, stage).register_forward_hook(
            lambda _m, _i, out, stage=stage: sizes.__setitem__(stage, tuple(out.shape[1:]))))
    with torch.no_grad():
        net.eval()(x)
    for h in hooks:
        h.remove()
    return sizes


def shapes(net: nn.Module) -> dict[str, torch.Size]:
    return {k: v.shape for k, v in net.state_dict().items()}


def test_resnet18_cifar_layout_has_a_3x3_stride_1_stem_and_no_max_pool():
    net = built("resnet18", "cifar10")
    conv1 = net.conv1
    assert (conv1.in_channels, conv1.out_channels, conv1.kernel_size, conv1.stride, conv1.padding) == \
           (3, 64, (3, 3), (1, 1), (1, 1)) and conv1.bias is None
    assert isinstance(net.maxpool, nn.Identity)
    assert feature_map_sizes(net, torch.randn(1, 3, 32, 32)) == {
        "conv1": (64, 32, 32), "maxpool": (64, 32, 32), "layer1": (64, 32, 32), "layer4": (512, 4, 4)}
    # Everything after the stem is torchvision's ResNet-18.
    reference = shapes(torchvision.models.resnet18(weights=None, num_classes=10))
    ours = shapes(net)
    assert ours.keys() == reference.keys()
    assert {k: v for k, v in ours.items() if k != "conv1.weight"} == \
           {k: v for k, v in reference.items() if k != "conv1.weight"}
    assert sum(p.numel() for p in net.parameters()) == 11_173_962  # the CIFAR ResNet-18's published size


def test_resnet18_cifar_layout_on_one_channel_images():
    net = built("resnet18", "mnist")
    assert net.conv1.weight.shape == (64, 1, 3, 3) and isinstance(net.maxpool, nn.Identity)


def test_resnet18_imagenet_is_torchvisions_layout():
    net = model("resnet18_imagenet", "cifar100")
    reference = torchvision.models.resnet18(weights=None, num_classes=100)
    assert shapes(net) == shapes(reference)
    assert str(net) == str(reference)  # same modules, same hyperparameters, same order
    assert feature_map_sizes(net, torch.randn(1, 3, 32, 32)) == {
        "conv1": (64, 16, 16), "maxpool": (64, 8, 8), "layer1": (64, 8, 8), "layer4": (512, 1, 1)}
    one_channel = built("resnet18_imagenet", "mnist").conv1
    assert (one_channel.weight.shape, one_channel.stride, one_channel.padding) == ((64, 1, 7, 7), (2, 2), (3, 3))


class PyTorchExamplesMnistNet(nn.Module):
    """The network of pytorch/examples mnist/main.py, as published."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        x = torch.flatten(self.dropout1(F.max_pool2d(x, 2)), 1)
        x = self.fc2(self.dropout2(F.relu(self.fc1(x))))
        return F.log_softmax(x, dim=1)


def test_small_cnn_is_the_pytorch_examples_mnist_net():
    net, reference = model("small_cnn", "mnist"), PyTorchExamplesMnistNet()
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(9216, 128), (128, 10)]
    assert [m.p for m in net.modules() if isinstance(m, nn.Dropout)] == [0.25, 0.5]
    # Same parameters in the same order: with the reference's weights it computes the same function.
    ours, theirs = list(net.parameters()), list(reference.parameters())
    assert [p.shape for p in ours] == [p.shape for p in theirs]
    with torch.no_grad():
        for p, q in zip(ours, theirs):
            p.copy_(q)
    x = torch.randn(4, 1, 28, 28)
    net.eval(), reference.eval()
    torch.testing.assert_close(net(x).log_softmax(1), reference(x))
    # In training mode dropout is active (the two calls differ); dropout=false removes it.
    net.train()
    assert not torch.equal(net(x), net(x))
    no_dropout = model("small_cnn", "mnist", dropout=False).train()
    assert torch.equal(no_dropout(x), no_dropout(x))


def test_small_cnn_refuses_images_too_small_for_its_two_convolutions():
    cfg = make_cfg("model=small_cnn", tiny=False).model
    with pytest.raises(UserError, match="at least 6x6"):
        build_model(cfg, "tiny_images", (1, 5, 5), 10)


def test_maclaurin_is_the_20_32_16_5_mlp():
    net = model("maclaurin", "polynomial")
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(20, 32), (32, 16), (16, 5)]
    x = torch.randn(6, 20)
    reference = linears[2](F.relu(linears[1](F.relu(linears[0](x)))))
    torch.testing.assert_close(net(x), reference)


def test_digits_cnn_keeps_8x8_digits_at_4x4_before_the_classifier():
    linears = [m for m in built("digits_cnn", "digits").modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64 * 4 * 4, 128), (128, 10)]


def test_unknown_model_name_lists_the_available_ones():
    with pytest.raises(UserError, match="model.name=transformer is unknown; available: .*resnet18"):
        build_model(OmegaConf.create({"name": "transformer"}), "cifar10", (3, 32, 32), 10)
