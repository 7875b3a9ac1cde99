"""Per-step metric rows, the run summary, and atomic file writes.

`metrics.csv` gets one row per decision step, flushed as it goes, so a crash loses at most
the step in flight. `summary.json` and every other whole-file output is written to a temporary
file and renamed into place: it is either complete or absent.
"""

from __future__ import annotations

import csv
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
    (a resumed run), appending after them.
    """

    def __init__(self, path: Path, rows: list[dict] | None = None, columns=COLUMNS):
        self.path = Path(path)
        self.rows: list[dict] = list(rows or [])
        self._file = open(self.path, "a" if rows is not None else "w", newline="")
        self.columns = list(columns)
        self._writer = csv.DictWriter(self._file, fieldnames=self.columns, extrasaction="ignore")
        if rows is None:
            self._writer.writeheader()
            self._file.flush()

    @staticmethod
    def truncate(path: Path, n_rows: int, columns=COLUMNS) -> None:
        """Keep the header and the first `n_rows` rows of `path` (drops rows written after a checkpoint)."""
        lines = []
        if Path(path).exists():
            with open(path, newline="") as f:  # keep csv's \r\n line ends as they are
                lines = f.read().splitlines(keepends=True)
        kept = lines[: n_rows + 1] if lines else [",".join(columns) + "\r\n"]
        with atomic_path(Path(path)) as tmp, open(tmp, "w", newline="") as f:
            f.write("".join(kept))

    @staticmethod
    def read(path: Path) -> list[dict]:
        """The rows of a CSV this class wrote, with the values `write` was given (ints, floats incl. nan,
        bools, strings; empty cells as None)."""
        with open(path, newline="") as f:
            return [{k: _parse_cell(v) for k, v in row.items()} for row in csv.DictReader(f)]

    def write(self, row: dict) -> None:
        self.rows.append(row)
        self._writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
        self._file.flush()

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
