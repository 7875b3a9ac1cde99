"""Normalisation and augmentation as batched tensor ops on the training device.

Images stay uint8 on the device; each batch is converted, normalised and (for training)
randomly cropped with zero padding and horizontally flipped in a handful of kernels, the
way airbench does it, instead of per-image PIL transforms in DataLoader workers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class DeviceTransform:
    """uint8/float batch -> normalised float batch, optionally augmented (crop pad 4 + flip)."""

    def __init__(self, mean, std, scale: float, augment: bool, device: torch.device, pad: int = 4):
        self.scale = float(scale)
        self.augment = augment
        self.pad = pad
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device) if mean is not None else None
        self.std = torch.tensor(std, dtype=torch.float32, device=device) if std is not None else None
        self.memory_format = torch.contiguous_format

    def __call__(self, x: torch.Tensor, train: bool, generator: torch.Generator | None = None) -> torch.Tensor:
        x = x.float()
        if self.scale != 1.0:
            x = x / self.scale
        if self.augment and train and x.dim() == 4:
            x = self._crop_flip(x, generator)
        if self.mean is not None:
            shape = (1, -1) + (1,) * (x.dim() - 2)
            x = (x - self.mean.view(shape)) / self.std.view(shape)
        if x.dim() == 4:
            x = x.contiguous(memory_format=self.memory_format)
        return x

    def _crop_flip(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        b, _, h, w = x.shape
        p = self.pad
        padded = F.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (b,), device=x.device, generator=generator)
        dx = torch.randint(0, 2 * p + 1, (b,), device=x.device, generator=generator)
        rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])[:, None, None, :]
        batch = torch.arange(b, device=x.device)[:, None, None, None]
        chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        out = padded[batch, chans, rows, cols]
        flip = torch.rand(b, device=x.device, generator=generator) < 0.5
        return torch.where(flip[:, None, None, None], out.flip(3), out)
