"""Datasets as tensors on the training device, with seeded train/val/test splits.

`load_dataset(cfg, seed, device)` is the one entry point: it reads the raw arrays (see
`sources`), carves validation out of the training set with the run's seed, and moves every
split to the device once. Batches are later cut from these tensors by index (see `engine`),
so there are no DataLoader workers on the hot path.
"""

from rlopt.data.bundle import DataBundle, Split, load_dataset

__all__ = ["DataBundle", "Split", "load_dataset"]
