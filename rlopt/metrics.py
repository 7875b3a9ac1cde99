"""Per-step metric rows and the run summary.

`metrics.csv` gets one row per decision step, flushed as it goes, so a crash loses at most
the step in flight. The summary is written whole and strict by `rlopt.files.write_json`.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = [
    "episode", "epoch", "step", "action", "optimizer", "lr", "train_loss", "val_loss", "val_acc",
    "val_precision", "val_recall", "val_f1", "reward", "epoch_time_s", "controller_time_s", "checkpoint_time_s", "grad_evals",
    "opt_steps", "grad_norm", "diverged",
]


class MetricsWriter:
    """Writes rows to a CSV with a fixed header (`COLUMNS` unless told), flushing after every row.

    `rows=None` starts the file afresh; a list of rows continues a file that already holds them
    (a resumed run), appending after them. It keeps the size and SHA-256 of the bytes written so
    far (`committed`), so a checkpoint can record exactly which prefix of the file it covers.
    """

    def __init__(self, path: Path, rows: list[dict] | None = None, columns=COLUMNS):
        self.path = Path(path)
        self.rows: list[dict] = list(rows or [])
        self.columns = list(columns)
        self._hash = hashlib.sha256()
        self.size = 0
        if rows is not None:
            existing = self.path.read_bytes()
            self._hash.update(existing)
            self.size = len(existing)
        self._file = open(self.path, "ab" if rows is not None else "wb")
        self._buffer = io.StringIO(newline="")
        self._writer = csv.DictWriter(self._buffer, fieldnames=self.columns, extrasaction="ignore")
        if rows is None:
            self._writer.writeheader()
            self._emit()

    @staticmethod
    def read(path: Path) -> list[dict]:
        """The rows of a CSV this class wrote, with the values `write` was given (ints, floats incl. nan,
        bools, strings; empty cells as None). pandas reads `nan` and an empty cell alike as NaN, so a
        second, text-only read tells which cells were empty."""
        rows = pd.read_csv(path)
        empty = pd.read_csv(path, dtype=str, keep_default_na=False).eq("")
        return rows.astype(object).where(~empty, None).to_dict("records")

    def write(self, row: dict) -> None:
        self.rows.append(row)
        self._writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
        self._emit()

    def _emit(self) -> None:
        data = self._buffer.getvalue().encode("utf-8")
        self._buffer.seek(0)
        self._buffer.truncate()
        self._file.write(data)
        self._file.flush()
        self._hash.update(data)
        self.size += len(data)

    def committed(self) -> dict:
        """What is on disk: row count, byte size and SHA-256 of those bytes (see `rlopt.run.recorder`)."""
        return {"rows": len(self.rows), "bytes": self.size, "sha256": self._hash.hexdigest()}

    @property
    def closed(self) -> bool:
        return self._file.closed

    def close(self) -> None:
        self._file.close()


def converged_epoch(rows: list[dict], tolerance_points: float) -> float | None:
    """First epoch whose val accuracy is within `tolerance_points` (percentage points) of the run's best.

    Regression tasks (no accuracy) use the first epoch whose val loss is within 5% of the best.
    """
    good = [r for r in rows if not r["diverged"]]
    if not good:
        return None
    if good[0]["val_acc"] is not None:
        best = max(r["val_acc"] for r in good)
        return next(r["epoch"] for r in good if r["val_acc"] >= best - tolerance_points / 100)
    best = min(r["val_loss"] for r in good)
    return next(r["epoch"] for r in good if r["val_loss"] <= best * 1.05 + 1e-12)


def _action_label(action, names) -> str:
    return names[int(action)] if names else str(action)


def build_summary(rows: list[dict], status: str, test: dict, best_epoch, wall_time: float,
                  tolerance_points: float, action_names: list[str] | None = None, extra: dict | None = None) -> dict:
    """The run's summary.json from its metric rows and the best checkpoint's test metrics."""
    times = [r["epoch_time_s"] for r in rows]
    controller = sum(r["controller_time_s"] for r in rows)
    summary = {
        "status": status,
        "test_loss": test.get("loss"),
        "test_acc": test.get("acc"),
        "test_precision": test.get("precision"),
        "test_recall": test.get("recall"),
        "test_f1": test.get("f1"),
        "best_epoch": best_epoch,
        "converged_epoch": converged_epoch(rows, tolerance_points),
        "final_val_loss": rows[-1]["val_loss"] if rows else None,
        "final_val_acc": rows[-1]["val_acc"] if rows else None,
        "epoch_time_s": {
            "min": float(np.min(times)) if times else None,
            "median": float(np.median(times)) if times else None,
            "max": float(np.max(times)) if times else None,
        },
        "wall_time_s": wall_time,
        "controller_time_s": controller,
        "controller_time_share": controller / wall_time if wall_time > 0 else None,
        "checkpoint_time_s": float(sum(r.get("checkpoint_time_s", 0.0) for r in rows)),
        "grad_evals": rows[-1]["grad_evals"] if rows else 0,
        "opt_steps": rows[-1]["opt_steps"] if rows else 0,
        "steps": len(rows),
        "action_counts": dict(Counter(_action_label(r["action"], action_names) for r in rows)),
        "optimizer_counts": dict(Counter(str(r["optimizer"]) for r in rows)),
        "total_reward": float(sum(r["reward"] for r in rows)),
    }
    summary.update(extra or {})
    return summary
