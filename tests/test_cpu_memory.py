"""The CPU allocator setting: on glibc it must stop training steps from page-faulting fresh memory."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from rlopt.cpu_memory import keep_freed_memory

STEPS = """
import resource, sys, torch
from omegaconf import OmegaConf
if sys.argv[1] == "keep":
    from rlopt.cpu_memory import keep_freed_memory
    assert keep_freed_memory()
from rlopt.models import build_model
torch.manual_seed(0)
model = build_model(OmegaConf.create({"name": "small_cnn"}), "mnist", (1, 28, 28), 10)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x, y = torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,))
def step():
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
for _ in range(10):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="needs Linux with glibc")
def test_steady_training_steps_stop_page_faulting():
    """20 steady small_cnn steps fault ~230k-290k pages under glibc's defaults (~50 MB a step), and
    0 to ~5k with the setting (the most seen in a full test run). The defaults are not compared here:
    now and then glibc's own dynamic threshold settles and a default run faults little, which would
    make such a test flaky; the bound sits well between the two."""
    assert keep_freed_memory() is True and keep_freed_memory() is True  # idempotent
    kept = min(_page_faults("keep") for _ in range(2))
    assert kept < 20_000, f"{kept} minor page faults in 20 steady steps (4 KiB each)"
