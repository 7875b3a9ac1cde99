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
        self.bar = None

    def start(self, filename: str, total_steps: int) -> None:
        self.close()
        self.writer = MetricsWriter(self.run_dir / filename)
        if self.progress:
            self.bar = tqdm(total=total_steps, desc=f"{self.title} {filename}", unit="step", leave=True)

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
