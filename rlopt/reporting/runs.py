"""Finding run folders on disk and reading what each run is and how it ended.

Shared by the sweep callback (the list of failed jobs at the end of a multirun) and
`rlopt report` (the tables), so both agree on what "failed" and "incomplete" mean. Only what a
run wrote is read: `.hydra/config.yaml`, `.hydra/overrides.yaml` and `summary.json`.

A run's *method* is the name it gets in tables and legends: the config's `label` when set,
otherwise the controller's name followed by the command-line overrides that differ between the
runs of that controller on that dataset (seeds aside). `controller=sgd optim.sgd.lr=0.1,0.01`
thus gives `sgd optim.sgd.lr=0.1` and `sgd optim.sgd.lr=0.01`, while a plain
`controller=sgd,sam seed=0,1,2` gives `sgd` and `sam`.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from rlopt.errors import UserError
from rlopt.files import read_json

FINISHED = ("completed", "diverged")

# Overrides that never tell methods apart: the table's own axes (dataset, seed, controller),
# the explicit label, and switches that change where or how loudly a run goes, not what it does.
NOT_METHOD = {"seed", "dataset", "dataset.name", "controller", "controller.name", "label", "trainer.progress",
              "trainer.plots", "trainer.device", "dataset.root", "dataset.download", "instance", "instances",
              "instances.file"}

_PARSER = OverridesParser.create()


def _config(run_dir: Path):
    return OmegaConf.load(run_dir / ".hydra" / "config.yaml")


def is_run(run_dir: Path) -> bool:
    """A training or evaluation run (a report's own folder also holds .hydra/, but no controller; a tune
    folder or tune worker has one, and its runs are the trials and final/ inside; the folder of
    `rlopt evaluate runs=K` holds its K runs in sub-folders)."""
    cfg = _config(run_dir)
    return ("controller" in cfg and "dataset" in cfg and "tune" not in cfg
            and OmegaConf.select(cfg, "runs", default=1) == 1 and OmegaConf.select(cfg, "instance", default=None) != "all")


def find_runs(dirs) -> list[Path]:
    """Every run folder at or under `dirs`, each once, in a stable order."""
    found: dict[Path, Path] = {}
    for d in dirs:
        root = Path(str(d)).expanduser()
        if not root.is_dir():
            raise UserError(f"dirs: {d} is not a folder (give run or sweep folders, e.g. outputs/sweeps/<time>)")
        for cfg_file in sorted(root.glob("**/.hydra/config.yaml")):
            run_dir = cfg_file.parent.parent
            if is_run(run_dir):
                found.setdefault(run_dir.resolve(), run_dir)
    return sorted(found.values())


def read_status(run_dir: Path) -> tuple[str, str | None, dict]:
    """(status, error, summary) of one run; a run without summary.json is `incomplete`, one whose summary.json
    cannot be read (cut short, edited, not JSON) `unreadable`: listed with the failed runs, the rest reported."""
    summary_file = Path(run_dir) / "summary.json"
    if not summary_file.is_file():
        return "incomplete", "no summary.json: the run stopped before finishing, or is still running", {}
    try:
        summary = read_json(summary_file)
    except (OSError, ValueError) as err:  # ValueError: JSONDecodeError, UnicodeDecodeError
        return "unreadable", f"summary.json is unreadable ({type(err).__name__}: {err})", {}
    if not isinstance(summary, dict):
        return "unreadable", f"summary.json holds a {type(summary).__name__}, not a run summary", {}
    return summary.get("status", "unknown"), summary.get("error"), summary


def overrides(run_dir: Path) -> dict[str, str]:
    """The run's command-line overrides as key -> value text (Hydra's own overrides excluded)."""
    file = Path(run_dir) / ".hydra" / "overrides.yaml"
    lines = [str(line) for line in OmegaConf.load(file)] if file.is_file() else []
    return {o.key_or_group: o.get_value_element_as_str() for o in _PARSER.parse_overrides(lines)
            if not o.is_delete() and not o.key_or_group.startswith("hydra")}


def identity(run_dir: Path) -> dict:
    """What a run is: dataset, controller and its type, seed, label and overrides (the method comes later).
    `.hydra/config.yaml` is the config the run ran (`rlopt evaluate` saves its frozen controller there)."""
    cfg = _config(run_dir)
    return {
        "run": str(run_dir),
        "dataset": str(OmegaConf.select(cfg, "dataset.name")),
        "controller": str(OmegaConf.select(cfg, "controller.name")),
        # fixed | schedule | random | sb3 | frozen: the reports compare against the fixed baselines
        "controller_type": OmegaConf.select(cfg, "controller.type"),
        "seed": OmegaConf.select(cfg, "seed"),
        "label": OmegaConf.select(cfg, "label", default=None),
        "overrides": overrides(run_dir),
    }


def method_labels(runs: list[dict]) -> list[str]:
    """One method name per run (see the module docstring), in the order of `runs`."""
    varying: dict[tuple[str, str], list[str]] = {}
    groups: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        groups.setdefault((run["dataset"], run["controller"]), []).append(run)
    for key, members in groups.items():
        keys = sorted({k for m in members for k in m["overrides"]} - NOT_METHOD)
        varying[key] = [k for k in keys if len({m["overrides"].get(k) for m in members}) > 1]
    labels = []
    for run in runs:
        if run["label"]:
            labels.append(str(run["label"]))
            continue
        parts = [f"{k}={run['overrides'][k]}" for k in varying[(run["dataset"], run["controller"])] if k in run["overrides"]]
        labels.append(" ".join([run["controller"], *parts]))
    return labels
