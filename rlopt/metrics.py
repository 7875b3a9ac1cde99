"""Per-step metric rows and the run summary.

`metrics.csv` gets one row per decision step, flushed as it goes, so a crash loses at most
the step in flight. The summary is written whole and strict by `rlopt.files.write_json`.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from rlopt.files import atomic_path

COLUMNS = [
    "episode", "epoch", "step", "action", "optimizer", "lr", "train_loss", "val_loss", "val_acc",
    "val_precision", "val_recall", "val_f1", "reward", "epoch_time_s", "controller_time_s", "checkpoint_time_s", "grad_evals",
    "opt_steps", "grad_norm", "diverged",
]


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
        bools, strings; empty cells as None). pandas reads `nan` and an empty cell alike as NaN, so a
        second, text-only read tells which cells were empty."""
        rows = pd.read_csv(path)
        empty = pd.read_csv(path, dtype=str, keep_default_na=False).eq("")
        return rows.astype(object).where(~empty, None).to_dict("records")

    def write(self, row: dict) -> None:
        self.rows.append(row)
        self._writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
        self._file.flush()

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
