"""Test-only fault injection: `RLOPT_TEST_KILL_AT=<point>:<n>` SIGKILLs this process the n-th time
it reaches `<point>`, so the fault-injection tests (tests/test_faults.py) can kill a run at an
exact place, e.g. in the middle of writing a checkpoint, instead of racing it from outside.

Points: `claimed` (the run wrote its config into the folder, before it reads its data), `row` (a CSV
row of the controlled or learning run was written), `checkpoint` (the new checkpoint is complete in its
temporary file, not yet renamed over checkpoint.pt), `policy`, `plots` and `summary` (each right after
it was written). Not a user feature: unset, it costs one dictionary lookup per point.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

VARIABLE = "RLOPT_TEST_KILL_AT"
_reached: Counter = Counter()


def reach(point: str) -> None:
    spec = os.environ.get(VARIABLE)
    if not spec:
        return
    name, _, count = spec.partition(":")
    if name != point:
        return
    _reached[point] += 1
    if _reached[point] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
