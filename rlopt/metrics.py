"""Per-step metric rows, the run summary, and atomic file writes.

`metrics.csv` gets one row per decision step, flushed as it goes, so a crash loses at most
the step in flight. `summary.json` and every other whole-file output is written to a temporary
file and renamed into place: it is either complete or absent.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np

COLUMNS = [
    "episode", "epoch", "step", "action", "optimizer", "lr", "train_loss", "val_loss", "val_acc",
    "val_precision", "val_recall", "val_f1", "reward", "epoch_time_s", "controller_time_s", "checkpoint_time_s", "grad_evals",
    "opt_steps", "grad_norm", "diverged",
]


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: Path):
    """Yield a temporary path next to `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=float) + "\n")


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
        bools, strings; empty cells as None)."""
        with open(path, newline="", encoding="utf-8") as f:
            return [{k: _parse_cell(v) for k, v in row.items()} for row in csv.DictReader(f)]

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
        """What is on disk: row count, byte size and SHA-256 of those bytes (see `rlopt.recorder`)."""
        return {"rows": len(self.rows), "bytes": self.size, "sha256": self._hash.hexdigest()}

    @property
    def closed(self) -> bool:
        return self._file.closed

    def close(self) -> None:
        self._file.close()


def _parse_cell(cell: str):
    if cell == "":
        return None
    if cell in ("True", "False"):
        return cell == "True"
    for kind in (int, float):
        try:
            return kind(cell)
        except ValueError:
            pass
    return cell


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
