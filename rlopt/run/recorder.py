"""Where the metric rows the runner collects go: the run's CSV files and a progress bar.

A checkpoint records, for every CSV the run has written so far, how many rows it had committed
and the size and SHA-256 of those bytes. A resume first checks that every such file still starts
with exactly those bytes (a missing, short or edited file is refused with one line: the run would
silently differ otherwise), then cuts each file back to them and appends after them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tqdm.auto import tqdm

from rlopt.errors import RunRefused
from rlopt.files import atomic_path
from rlopt.metrics import COLUMNS, MetricsWriter


class RunRecorder:
    """Routes rows to the current CSV (`metrics.csv`, or `learning_metrics.csv` while an agent
    learns over several runs) and shows a tqdm bar with the latest metrics. Extra tables (the
    layer-wise env's one row per layer and step) go beside it with the same prefix:
    `layer_lrs.csv`, or `learning_layer_lrs.csv` while learning."""

    def __init__(self, run_dir: Path, progress: bool, title: str = ""):
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.title = title
        self.writer: MetricsWriter | None = None
        self.filename: str | None = None
        self.tables: dict[str, MetricsWriter] = {}
        self.prefix = ""
        self.bar = None
        self.closed: dict[str, dict] = {}  # files this run finished writing: what they committed
        self.resumed: dict[str, dict] = {}  # files the resumed checkpoint committed, until they are continued

    def start(self, filename: str, total_steps: int, columns=COLUMNS) -> None:
        """Begin writing `filename` (with `columns`) afresh, or continue it if the run was resumed inside it."""
        self.close()
        self.writer = self._open(filename, columns, read_rows=True)
        self.filename = filename
        self.prefix = filename.removesuffix("metrics.csv")
        if self.progress:
            self.bar = tqdm(total=total_steps, desc=f"{self.title} {filename}", unit="step", leave=True,
                            initial=len(self.writer.rows))

    def _open(self, name: str, columns, read_rows: bool = False) -> MetricsWriter:
        """A writer for `name`: continuing the rows a resumed checkpoint committed to it, else a fresh file."""
        path = self.run_dir / name
        if name not in self.resumed:
            return MetricsWriter(path, columns=columns)
        committed = self.resumed.pop(name)
        rows = MetricsWriter.read(path) if read_rows else [{}] * committed["rows"]  # placeholders count a table's rows
        return MetricsWriter(path, rows, columns)

    def state_dict(self) -> dict:
        """What every CSV had committed (rows, bytes, hash), not the rows: they are on disk, flushed before any
        checkpoint is written, so a checkpoint stays the same size however long the run."""
        files = {**self.closed, **self.resumed}
        for writer in [self.writer, *self.tables.values()]:
            if writer is not None:
                files[writer.path.name] = writer.committed()
        return {"file": self.filename, "files": files}

    def check(self, state: dict) -> None:
        """Refuse (`RunRefused`) unless every file the checkpoint `state` committed starts with those bytes.
        Changes nothing; `load_state_dict` then cuts the files back."""
        for name, committed in state["files"].items():
            path = self.run_dir / name
            if not path.is_file():
                raise RunRefused(f"{path} is missing, but checkpoint.pt says {committed['rows']} rows of it were "
                                 "written; the run cannot resume exactly")
            with open(path, "rb") as f:
                data = f.read(committed["bytes"])
            if len(data) < committed["bytes"]:
                rows = max(data.count(b"\n") - 1, 0)
                raise RunRefused(f"{path} is shorter ({rows} rows) than checkpoint.pt recorded "
                                 f"({committed['rows']} rows); the run cannot resume exactly")
            if hashlib.sha256(data).hexdigest() != committed["sha256"]:
                raise RunRefused(f"{path}: its first {committed['rows']} rows differ from what checkpoint.pt "
                                 "recorded; the run cannot resume exactly")

    def load_state_dict(self, state: dict) -> None:
        """Cut every CSV back to the bytes the (checked) checkpoint committed; `start`/`on_table` append after them."""
        for name, committed in state["files"].items():
            path = self.run_dir / name
            if path.stat().st_size > committed["bytes"]:
                with open(path, "rb") as f:
                    data = f.read(committed["bytes"])
                with atomic_path(path) as tmp:
                    tmp.write_bytes(data)
        self.resumed = dict(state["files"])
        self.filename = state["file"]
        self.prefix = state["file"].removesuffix("metrics.csv") if state["file"] else ""

    @property
    def wrote_rows(self) -> bool:
        """Whether the run has rows in any of its CSV files (written by this process or by the run it resumed)."""
        return bool(self.rows or self.closed or self.resumed or self.tables)

    @property
    def rows(self) -> list[dict]:
        return self.writer.rows if self.writer else []

    def on_step(self, row: dict) -> None:
        self.writer.write(row)
        if self.bar is not None:
            shown = {"opt": row["optimizer"], "lr": f"{row['lr']:.2g}", "val_loss": f"{row['val_loss']:.3f}"}
            if row.get("val_acc") is not None:
                shown["val_acc"] = f"{row['val_acc']:.3f}"
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)

    def on_table(self, name: str, columns, rows) -> None:
        """Append `rows` to the extra table `name` (created with `columns` on first use)."""
        if name not in self.tables:
            self.tables[name] = self._open(f"{self.prefix}{name}.csv", columns)
        for row in rows:
            self.tables[name].write(row)

    def close(self) -> None:
        for writer in [self.writer, *self.tables.values()]:
            if writer is not None and not writer.closed:
                self.closed[writer.path.name] = writer.committed()
                writer.close()
        self.tables = {}
        if self.bar is not None:
            self.bar.close()
            self.bar = None
