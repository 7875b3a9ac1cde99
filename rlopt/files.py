"""Whole-file writes that are complete or absent, and strict JSON.

Every whole-file output (summary.json, checkpoints, tables, figures) is written to a temporary
file next to its target and renamed into place, so a crash leaves the old file or the new one,
never half of one. Every JSON file rlopt writes is strict (RFC 8259): a NaN or infinite number,
which Python's json would write as the non-standard `NaN`/`Infinity`, is written as `null`.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def atomic_path(path: Path):
    """Yield a temporary path next to `path`; rename it over `path` only if the block succeeds.

    The temporary file is created (exclusively) with mode 0o666, which the kernel masks with the
    process umask, so the result gets the permissions any new file would get, without reading or
    changing the umask (mkstemp's 0o600 would need a chmod, and knowing the umask to undo it).
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def strict(value):
    """`value` with numpy scalars and arrays as Python values and every non-finite float as None."""
    if isinstance(value, dict):
        return {key: strict(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    if isinstance(value, (np.ndarray, np.generic)):
        return strict(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, data: dict) -> None:
    """Write `data` as strict, indented JSON, atomically. Other number types (a 0-d tensor) go through float."""
    text = json.dumps(strict(data), indent=2, allow_nan=False, default=lambda v: strict(float(v)))
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")


def read_json(path: Path):
    return json.loads(Path(path).read_text())
