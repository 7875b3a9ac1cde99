"""What a process may use of the machine: the cores it may run on, and the GPU memory it has held."""

from __future__ import annotations

import os

import torch


def cpu_count() -> int:
    """The cores this process may use (its affinity mask, e.g. a Slurm allocation, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def peak_gpu_memory_mb(device) -> float | None:
    """The most memory this process's tensors held at once on a CUDA `device` (MiB); None off CUDA."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
