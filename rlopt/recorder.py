"""Where the environment's metric rows go: the run's CSV files and a progress bar."""

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
        self.tables: dict[str, MetricsWriter] = {}
        self.prefix = ""
        self.bar = None

    def start(self, filename: str, total_steps: int) -> None:
        self.close()
        self.writer = MetricsWriter(self.run_dir / filename)
        self.prefix = filename.removesuffix("metrics.csv")
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

    def on_table(self, name: str, columns, rows) -> None:
        """Append `rows` to the extra table `name` (created with `columns` on first use)."""
        if name not in self.tables:
            self.tables[name] = MetricsWriter(self.run_dir / f"{self.prefix}{name}.csv", columns)
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
