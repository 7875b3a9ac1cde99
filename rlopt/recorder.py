"""Where the metric rows the runner collects go: the run's CSV files and a progress bar."""

from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from rlopt.metrics import MetricsWriter


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
        self._resumed: dict | None = None
        self._resumed_rows: list[dict] = []

    def start(self, filename: str, total_steps: int) -> None:
        """Begin writing `filename` afresh, or continue it if the run was resumed inside it."""
        self.close()
        resumed = self._resumed if self._resumed and self._resumed["file"] == filename else None
        self.writer = MetricsWriter(self.run_dir / filename, rows=self._resumed_rows if resumed else None)
        self.filename = filename
        self.prefix = filename.removesuffix("metrics.csv")
        if self.progress:
            self.bar = tqdm(total=total_steps, desc=f"{self.title} {filename}", unit="step", leave=True,
                            initial=len(self.writer.rows))

    def state_dict(self) -> dict:
        """Row counts only: the rows themselves are on disk, flushed before any checkpoint is written, so a
        checkpoint stays the same size however long the run (holding them made each one O(steps))."""
        return {"file": self.filename, "committed_rows": len(self.rows),
                "tables": {name: (t.columns, len(t.rows)) for name, t in self.tables.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Cut the CSVs back to the rows the checkpoint committed and read those back; `start`/`on_table`
        then append after them."""
        self._resumed = state
        if state["file"] is not None:
            path = self.run_dir / state["file"]
            MetricsWriter.truncate(path, state["committed_rows"])
            self._resumed_rows = MetricsWriter.read(path)
        self.prefix = state["file"].removesuffix("metrics.csv") if state["file"] else ""
        for name, (columns, count) in state["tables"].items():
            MetricsWriter.truncate(self.run_dir / f"{self.prefix}{name}.csv", count, columns)

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
            resumed = (self._resumed or {}).get("tables", {}).get(name)
            # after a resume: continue the truncated table (placeholders stand for its committed rows)
            kept = [{}] * resumed[1] if resumed and self._resumed["file"] == self.filename else None
            self.tables[name] = MetricsWriter(self.run_dir / f"{self.prefix}{name}.csv", kept, columns)
        for row in rows:
            self.tables[name].write(row)

    def close(self) -> None:
        for table in self.tables.values():
            table.close()
        self.tables = {}
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.writer is not None:
            self.writer.close()
