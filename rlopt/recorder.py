"""Where the environment's metric rows go: the run's CSV files and a progress bar."""

from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from rlopt.metrics import MetricsWriter


class RunRecorder:
    """Routes rows to the current CSV (`metrics.csv`, or `learning_metrics.csv` while an agent
    learns over several runs) and shows a tqdm bar with the latest metrics."""

    def __init__(self, run_dir: Path, progress: bool, title: str = ""):
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.title = title
        self.writer: MetricsWriter | None = None
        self.filename: str | None = None
        self.bar = None
        self._resumed: dict | None = None

    def start(self, filename: str, total_steps: int) -> None:
        """Begin writing `filename` afresh, or continue it if the run was resumed inside it."""
        self.close()
        resumed = self._resumed if self._resumed and self._resumed["file"] == filename else None
        self.writer = MetricsWriter(self.run_dir / filename, rows=resumed["rows"] if resumed else None)
        self.filename = filename
        if self.progress:
            self.bar = tqdm(total=total_steps, desc=f"{self.title} {filename}", unit="step", leave=True,
                            initial=len(self.writer.rows))

    def state_dict(self) -> dict:
        return {"file": self.filename, "rows": list(self.rows)}

    def load_state_dict(self, state: dict) -> None:
        """Cut the CSV back to the rows the checkpoint committed; `start` then appends after them."""
        self._resumed = state
        if state["file"] is not None:
            MetricsWriter.truncate(self.run_dir / state["file"], len(state["rows"]))

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

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.writer is not None:
            self.writer.close()
