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

    def take(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets at `positions` (any shape of indices into the split)."""
        return self.x[positions], self.y[positions]


@dataclass
class MemberSplits:
    """K splits of one length, one per member of a population, each a selection of the rows of one pool
    (member k's example i is pool row `index[k, i]`): the training and validation splits of K run seeds, each
    carved with its own seed, share the dataset's rows instead of holding K copies of them."""

    pool: Split
    index: torch.Tensor  # (K, n) rows of the pool

    def __len__(self) -> int:
        return self.index.shape[1]

    def take(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Member k's examples at `positions[k]` ((K, w) positions into each member's split): (K, w, ...) each."""
        return self.pool.take(self.index.gather(1, positions))

    def rows(self, members: torch.Tensor, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Examples start..stop of each of `members`' splits: (M, stop - start, ...) inputs and targets."""
        return self.pool.take(self.index[members, start:stop])

    def targets(self, members: torch.Tensor) -> torch.Tensor:
        """Every target of each of `members`' splits, (M, n, ...)."""
        return self.pool.y[self.index[members]]


@dataclass
class DataBundle:
    """Everything the training loop needs to know about a dataset."""

    name: str
    task: str  # "classification" or "regression"
    train: Split | MemberSplits  # a population of run seeds: one split per member
    val: Split | MemberSplits
    test: Split
    num_outputs: int  # classes, or regression targets
    input_shape: tuple[int, ...]  # (C, H, W) for images, (F,) for features
    transform: DeviceTransform

    @property
    def is_classification(self) -> bool:
        return self.task == "classification"


def _take(x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, device: torch.device) -> Split:
    return Split(x[idx].to(device), y[idx].to(device))


def split_indices(cfg, n_train: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows of the raw training set that run `seed` validates on and trains on: `cfg.val_size` drawn with
    `seed` (or `cfg.split_seed`), the rest (the first `cfg.train_subset` of them) for training."""
    split_seed = seed if cfg.split_seed is None else cfg.split_seed
    perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(int(split_seed)))
    val_idx, train_idx = perm[:cfg.val_size], perm[cfg.val_size:]
    if cfg.train_subset is not None:
        train_idx = train_idx[: cfg.train_subset]
    return val_idx, train_idx


def load_dataset(cfg, seed: int, device: torch.device) -> DataBundle:
    """Load `cfg.name`, carve `cfg.val_size` validation examples from train with `seed` (or `cfg.split_seed`)."""
    raw = _read(cfg)
    val_idx, train_idx = split_indices(cfg, len(raw.train_y), seed)
    return _bundle(cfg, raw, device, _take(raw.train_x, raw.train_y, train_idx, device),
                   _take(raw.train_x, raw.train_y, val_idx, device))


def load_member_data(cfg, seeds: list[int], device: torch.device) -> DataBundle:
    """The data of K runs, one per seed of `seeds`, trained as one population: member k's training and validation
    splits are those `load_dataset(cfg, seeds[k])` carves, as `MemberSplits` of one copy of the raw training set
    on the device; the test split is every seed's own."""
    raw = _read(cfg)
    pool = Split(raw.train_x.to(device), raw.train_y.to(device))
    parts = [split_indices(cfg, len(raw.train_y), seed) for seed in seeds]

    def member_splits(part: int) -> MemberSplits:
        return MemberSplits(pool, torch.stack([p[part] for p in parts]).to(device))

    return _bundle(cfg, raw, device, member_splits(1), member_splits(0))


def _read(cfg) -> RawDataset:
    """The raw arrays of `cfg.name`, once `cfg.val_size` is known to leave training examples."""
    check_dataset(cfg)
    raw: RawDataset = read_source(cfg)
    n_train = len(raw.train_y)
    if cfg.val_size < 1 or cfg.val_size >= n_train:
        raise UserError(
            f"dataset.val_size={cfg.val_size} is not allowed: it must be between 1 and {n_train - 1} "
            f"(the {cfg.name} training set has {n_train} examples)"
        )
    return raw


def _bundle(cfg, raw: RawDataset, device: torch.device, train, val) -> DataBundle:
    test_idx = torch.arange(len(raw.test_y))
    if cfg.test_subset is not None:
        test_idx = test_idx[: cfg.test_subset]
    return DataBundle(
        name=cfg.name,
        task=raw.task,
        train=train,
        val=val,
        test=_take(raw.test_x, raw.test_y, test_idx, device),
        num_outputs=raw.num_outputs,
        input_shape=tuple(raw.train_x.shape[1:]),
        transform=DeviceTransform(
            mean=raw.mean, std=raw.std, scale=raw.scale, augment=cfg.augment, device=device
        ),
    )
