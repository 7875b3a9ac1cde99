"""The training and validation examples of a population's members, stacked so that one gather serves them all.

Members of one population may train different Tasks of one architecture (an instance set's instances, each
with its own data: subset, noise, coefficient scale, split seed). Each distinct `DataBundle` is added once;
its train and val splits are appended to one tensor per split, and a member reads its own rows at its
bundle's offset (`train_start` / `val_start`), so a batch of K members with K different datasets is still
one indexing op. With one bundle (a population of one Task) the stacked splits are that bundle's own
tensors, no copy. Bundles are only ever appended: offsets once given stay valid.
"""

from __future__ import annotations

import torch

from rlopt.data import DataBundle, Split


def _same_normalisation(a: DataBundle, b: DataBundle) -> bool:
    """Whether the two bundles' inputs are scaled and normalised alike (their dataset's constants)."""
    ta, tb = a.transform, b.transform
    return ta.scale == tb.scale and all(
        (x is None and y is None) or (x is not None and y is not None and torch.equal(x, y))
        for x, y in ((ta.mean, tb.mean), (ta.std, tb.std)))


class StackedData:
    def __init__(self):
        self.bundles: list[DataBundle] = []
        self.train_start: list[int] = []
        self.val_start: list[int] = []
        self.train: Split | None = None
        self.val: Split | None = None

    def add(self, data: DataBundle) -> int:
        """The index of `data` among the bundles, adding (and stacking) it if it is new."""
        for i, known in enumerate(self.bundles):
            if known is data:
                return i
        if self.bundles and not _same_normalisation(self.bundles[0], data):
            raise ValueError(f"dataset {data.name} is normalised unlike {self.bundles[0].name}: one population "
                             "holds one architecture's data (see rlopt.instances.spec.architecture)")
        self.train_start.append(len(self.train) if self.train is not None else 0)
        self.val_start.append(len(self.val) if self.val is not None else 0)
        self.bundles.append(data)
        self.train, self.val = (self._stacked(part) for part in ("train", "val"))
        return len(self.bundles) - 1

    def _stacked(self, part: str) -> Split:
        splits = [getattr(b, part) for b in self.bundles]
        if len(splits) == 1:
            return splits[0]
        return Split(torch.cat([s.x for s in splits]), torch.cat([s.y for s in splits]))
