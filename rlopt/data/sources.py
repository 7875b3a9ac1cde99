"""Raw arrays for every dataset the runner knows, one reader per dataset.

torchvision datasets are read through torchvision itself (so a user's existing copy under
`dataset.root` works offline, and `download=true` fetches it on a machine with internet);
`digits` comes from scikit-learn's bundled copy; `polynomial` is generated.
"""

from __future__ import annotations

import importlib.util
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rlopt.errors import UserError


@dataclass
class RawDataset:
    task: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_outputs: int
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    scale: float  # inputs are divided by this before normalisation (255 for uint8 images)


# Per-channel statistics of the training sets (on [0, 1] pixels).
_VISION = {
    "mnist": ("MNIST", 10, (0.1307,), (0.3081,)),
    "fashion_mnist": ("FashionMNIST", 10, (0.2860,), (0.3530,)),
    "cifar10": ("CIFAR10", 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ("CIFAR100", 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def _as_nchw_uint8(data) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(data))
    if x.dim() == 3:  # MNIST-style (N, H, W)
        return x.unsqueeze(1).contiguous()
    return x.permute(0, 3, 1, 2).contiguous()  # CIFAR-style (N, H, W, C)


# IDX readers assert on bad headers and raise TypeError/KeyError on unknown types; CIFAR's
# pickles raise UnpicklingError/EOFError when truncated and KeyError when a field is missing.
_CORRUPT_FILE_ERRORS = (ValueError, IndexError, EOFError, AssertionError, KeyError, TypeError, pickle.UnpicklingError)


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


def _read_vision(cfg) -> RawDataset:
    import torchvision

    cls_name, n_classes, mean, std = _VISION[cfg.name]
    cls = getattr(torchvision.datasets, cls_name)
    root = Path(str(cfg.root)).expanduser()
    splits = {}
    for train in (True, False):
        try:
            ds = cls(root=str(root), train=train, download=bool(cfg.download))
        except RuntimeError as err:  # torchvision: "Dataset not found" / integrity check failed
            raise UserError(
                f"dataset {cfg.name}: no usable copy under {root.resolve()} ({_one_line(err)}). "
                f"Set dataset.download=true on a machine with internet, or point dataset.root "
                f"(or RLOPT_DATA) at a folder holding torchvision's {cls_name} layout"
            ) from None
        except OSError as err:  # no network, unreadable or truncated files
            raise UserError(
                f"dataset {cfg.name}: could not read or download it under {root.resolve()} ({_one_line(err)}). "
                f"Without network, copy torchvision's {cls_name} files there and set dataset.download=false"
            ) from None
        except _CORRUPT_FILE_ERRORS as err:  # what torchvision's readers raise on malformed files
            detail = ": ".join(filter(None, (type(err).__name__, _one_line(err))))
            raise UserError(
                f"dataset {cfg.name}: files under {root.resolve()} are corrupt or truncated ({detail}); "
                f"replace them with a fresh copy of torchvision's {cls_name} layout"
            ) from None
        x = _as_nchw_uint8(ds.data)
        y = torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)
        if len(x) != len(y):
            raise UserError(f"dataset {cfg.name}: files under {root.resolve()} are corrupt ({len(x)} images, {len(y)} labels)")
        if len(y) and not (0 <= int(y.min()) and int(y.max()) < n_classes):
            raise UserError(f"dataset {cfg.name}: files under {root.resolve()} are corrupt "
                            f"(labels {int(y.min())}..{int(y.max())}, expected 0..{n_classes - 1})")
        splits[train] = (x, y)
    return RawDataset(
        "classification", *splits[True], *splits[False], num_outputs=n_classes, mean=mean, std=std, scale=255.0
    )


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits (1797 images of 8x8 pixels 0..16, and their labels), read from the file
    `sklearn.datasets.load_digits` reads (`datasets/data/digits.csv.gz`: 64 pixels and the label per row),
    without importing scikit-learn (~1.5 s of every digits run's start-up)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("dataset=digits needs scikit-learn installed (its bundled digits); pip install scikit-learn")
    table = np.loadtxt(Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz", delimiter=",")
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(int)


def _read_digits(cfg) -> RawDataset:
    images, labels = digits_arrays()
    x = torch.as_tensor(images, dtype=torch.uint8).unsqueeze(1)  # values 0..16
    y = torch.as_tensor(labels, dtype=torch.long)
    # The test split is fixed (seed 0) so every run seed is scored on the same images.
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    n_test = int(cfg.test_size)
    if not 0 < n_test < len(y) - 1:
        raise UserError(f"dataset.test_size={cfg.test_size} is not allowed: use 1..{len(y) - 2}")
    test, train = perm[:n_test], perm[n_test:]
    pixels = x[train].float() / 16.0
    return RawDataset(
        "classification", x[train], y[train], x[test], y[test], num_outputs=10,
        mean=(pixels.mean().item(),), std=(pixels.std().item(),), scale=16.0,
    )


def polynomial_arrays(n: int, scales, n_points: int, x_min: float, x_max: float, seed: int = 0,
                      noise: float = 0.0):
    """Inputs: the polynomial's values at `n_points` equidistant points (plus Gaussian noise of std `noise`);
    targets: its coefficients, one per entry of `scales` (their standard deviations, degree 0 first)."""
    gen = torch.Generator().manual_seed(seed)
    scales_t = torch.tensor(list(scales), dtype=torch.float32)
    coeffs = torch.randn(n, len(scales_t), generator=gen) * scales_t
    xs = torch.linspace(float(x_min), float(x_max), int(n_points))
    powers = xs[:, None] ** torch.arange(len(scales_t), dtype=torch.float32)[None, :]  # (P, D)
    values = coeffs @ powers.T  # (n, P)
    if noise:  # drawn after the coefficients, so noise=0 and noise>0 share their polynomials
        values = values + noise * torch.randn(values.shape, generator=gen)
    return values, coeffs


def _read_polynomial(cfg) -> RawDataset:
    n = int(cfg.n_polynomials)
    n_test = int(cfg.test_size)
    if not 0 < n_test < n - 1:
        raise UserError(f"dataset.test_size={cfg.test_size} is not allowed: use 1..{n - 2}")
    degree, scales = int(cfg.degree), list(cfg.scales)
    if not 0 <= degree < len(scales):
        raise UserError(f"dataset.degree={degree} is not allowed: use 0..{len(scales) - 1} "
                        f"(dataset.scales lists {len(scales)} coefficients' scales; add entries for a higher degree)")
    if not cfg.coef_scale > 0 or cfg.noise < 0:
        raise UserError(f"dataset.coef_scale={cfg.coef_scale}, dataset.noise={cfg.noise} are not allowed: "
                        "coef_scale must be > 0 and noise >= 0")
    x, y = polynomial_arrays(n, [float(cfg.coef_scale) * s for s in scales[: degree + 1]], cfg.n_points, cfg.x_min,
                             cfg.x_max, seed=0, noise=float(cfg.noise))
    return RawDataset(
        "regression", x[n_test:], y[n_test:], x[:n_test], y[:n_test], num_outputs=y.shape[1],
        mean=None, std=None, scale=1.0,
    )


READERS: dict[str, Callable] = {name: _read_vision for name in _VISION}
READERS["digits"] = _read_digits
READERS["polynomial"] = _read_polynomial


def read_source(cfg) -> RawDataset:
    try:
        reader = READERS[cfg.name]
    except KeyError:
        raise UserError(f"dataset.name={cfg.name} is unknown; available: {', '.join(sorted(READERS))}") from None
    return reader(cfg)
