"""rlopt.files: strict JSON for every file rlopt writes, and atomic writes with the usual permissions."""

from __future__ import annotations

import json
import math
import os
import stat

import numpy as np
import pytest

from rlopt.files import atomic_path, read_json, write_json


def _strict_loads(text: str):
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")
    return json.loads(text, parse_constant=refuse)


def test_a_diverged_summary_is_written_as_strict_json(tmp_path):
    summary = {"status": "diverged", "test_loss": math.nan, "final_val_loss": math.inf, "best": -math.inf,
               "grad_evals": np.int64(120), "test_acc": np.float32(0.5), "lost": np.float64("nan"),
               "epoch_time_s": {"min": 0.25, "max": np.float64(np.inf)}, "losses": [1.0, math.nan, np.array([2.0, np.inf])],
               "diverged": np.bool_(True), "pair": (1, math.nan)}
    write_json(tmp_path / "summary.json", summary)
    back = _strict_loads((tmp_path / "summary.json").read_text())
    assert back == {"status": "diverged", "test_loss": None, "final_val_loss": None, "best": None, "grad_evals": 120,
                    "test_acc": 0.5, "lost": None, "epoch_time_s": {"min": 0.25, "max": None},
                    "losses": [1.0, None, [2.0, None]], "diverged": True, "pair": [1, None]}
    assert read_json(tmp_path / "summary.json") == back
    with pytest.raises(ValueError, match="NaN"):  # the check itself: Python's default output is refused
        _strict_loads(json.dumps({"x": math.nan}))


def test_atomic_files_get_the_umask_permissions_and_nothing_is_left_on_failure(tmp_path):
    previous = os.umask(0o027)
    try:
        with atomic_path(tmp_path / "a.txt") as tmp:
            tmp.write_text("done")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert (tmp_path / "a.txt").read_text() == "done" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]
