"""Split raw arrays into train/val/test tensors on the device."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlopt.config import check_dataset
from rlopt.data.sources import RawDataset, read_source
from rlopt.data.transforms import DeviceTransform
from rlopt.errors import UserError


@dataclass
class Split:
    """One split: inputs (uint8 images or float features) and targets, on the training device."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class DataBundle:
    """Everything the training loop needs to know about a dataset."""

    name: str
    task: str  # "classification" or "regression"
    train: Split
    val: Split
    test: Split
    num_outputs: int  # classes, or regression targets
    input_shape: tuple[int, ...]  # (C, H, W) for images, (F,) for features
    transform: DeviceTransform

    @property
    def is_classification(self) -> bool:
        return self.task == "classification"


def _take(x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, device: torch.device) -> Split:
    return Split(x[idx].to(device), y[idx].to(device))


def load_dataset(cfg, seed: int, device: torch.device) -> DataBundle:
    """Load `cfg.name`, carve `cfg.val_size` validation examples from train with `seed` (or `cfg.split_seed`)."""
    check_dataset(cfg)
    raw: RawDataset = read_source(cfg)
    n_train = len(raw.train_y)
    val_size = cfg.val_size
    if val_size < 1 or val_size >= n_train:
        raise UserError(
            f"dataset.val_size={cfg.val_size} is not allowed: it must be between 1 and {n_train - 1} "
            f"(the {cfg.name} training set has {n_train} examples)"
        )
    split_seed = seed if cfg.split_seed is None else cfg.split_seed
    perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(int(split_seed)))
    val_idx, train_idx = perm[:val_size], perm[val_size:]
    if cfg.train_subset is not None:
        train_idx = train_idx[: cfg.train_subset]
    test_idx = torch.arange(len(raw.test_y))
    if cfg.test_subset is not None:
        test_idx = test_idx[: cfg.test_subset]
    return DataBundle(
        name=cfg.name,
        task=raw.task,
        train=_take(raw.train_x, raw.train_y, train_idx, device),
        val=_take(raw.train_x, raw.train_y, val_idx, device),
        test=_take(raw.test_x, raw.test_y, test_idx, device),
        num_outputs=raw.num_outputs,
        input_shape=tuple(raw.train_x.shape[1:]),
        transform=DeviceTransform(
            mean=raw.mean, std=raw.std, scale=raw.scale, augment=cfg.augment, device=device
        ),
    )
