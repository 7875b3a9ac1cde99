"""The tables committed under docs/ are what `rlopt report` computes from the runs.csv committed beside them.

Each docs/<study>/ that holds a runs.csv also holds the report.json of the report that wrote it; the
tables are rebuilt from those two files alone (`rlopt report runs_csv=...`, the settings of report.json)
and must match the committed files byte for byte, so every number in them can be re-derived by a reader.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from rlopt.paths import conf_dir
from rlopt.report import write_comparison, write_tables
from rlopt.reporting.runs_table import read_runs

DOCS = Path(__file__).resolve().parents[1] / "docs"
STUDIES = sorted(p.parent for p in DOCS.glob("*/runs.csv"))
TABLES = ("table.md", "table.csv", "improvement.md", "improvement.csv", "aggregate.md", "ranks.md")


def test_some_committed_tables_have_their_runs():
    assert STUDIES, "no docs/<study>/runs.csv committed"


@pytest.mark.parametrize("study", STUDIES, ids=[s.name for s in STUDIES])
def test_committed_tables_rebuild_from_runs_csv(study, tmp_path):
    settings = json.loads((study / "report.json").read_text())
    given = {"reference": settings["reference_setting"], "low": settings["low"]}
    overrides = [f"out={tmp_path}", f"report.stat={settings['stat']}",
                 *(f"report.{key}={'null' if value is None else value}" for key, value in given.items()),
                 f"report.bootstrap.reps={settings['bootstrap']['reps']}",
                 f"report.bootstrap.seed={settings['bootstrap']['seed']}"]
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        cfg = compose(config_name="report", overrides=overrides)
    runs = read_runs(study / "runs.csv")
    write_tables(runs, tmp_path, settings["stat"], settings["bootstrap"]["reps"], settings["bootstrap"]["seed"])
    write_comparison(runs, tmp_path, cfg.report)
    committed = [name for name in TABLES if (study / name).is_file()]
    assert "table.md" in committed
    for name in committed:
        assert (tmp_path / name).read_text() == (study / name).read_text(), f"{study.name}/{name}"
