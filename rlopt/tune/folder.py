"""The tune folder and its stored config: `resume=DIR` continues one, workers given one `tune.dir` share it."""

from __future__ import annotations

from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from rlopt.errors import UserError
from rlopt.files import atomic_path, read_json, write_json

# Keys that may differ between the workers and sessions of one study (everything else must match);
# tune.worker changes nothing: it is the sweep axis that starts N workers (`-m tune.worker=0,1,2,3`).
SESSION_KEYS = ("resume", "final", "tune.n_trials", "tune.budget_grad_evals", "tune.worker", "tune.dir", "tune.final_seeds",
                "trainer.progress", "trainer.device", "trainer.threads")


def _without_session(cfg: DictConfig) -> dict:
    plain = OmegaConf.to_container(cfg, resolve=True)
    for key in SESSION_KEYS:
        *parents, leaf = key.split(".")
        node = plain
        for p in parents:
            node = node.get(p, {})
        node.pop(leaf, None)
    return plain


def _first_difference(a, b, prefix: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            found = _first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if found:
                return found
        return ""
    return "" if a == b else prefix.rstrip(".")


def tune_folder(cfg: DictConfig, out_dir: Path, overrides) -> tuple[DictConfig, Path]:
    """The effective config and the tune folder: `resume=DIR` continues DIR with its stored config (the
    command line may change only the session keys); `tune.dir` is shared by workers whose configs agree."""
    if cfg.resume is not None:
        folder = Path(cfg.resume).expanduser()
        stored = folder / "tune.yaml"
        if not stored.is_file():
            raise UserError(f"resume={cfg.resume} is not a tune folder: {stored} is missing")
        resumed = OmegaConf.load(stored)
        for override in OverridesParser.create().parse_overrides(list(overrides)):
            key = override.key_or_group
            if key == "resume" or key.startswith("hydra"):
                continue
            if key not in SESSION_KEYS:
                raise UserError(f"resume={cfg.resume} continues that tune with its own config; {key} cannot be changed "
                                f"(allowed: {', '.join(k for k in SESSION_KEYS if k != 'resume')})")
            OmegaConf.update(resumed, key, override.value(), force_add=True)
        return resumed, folder
    folder = Path(cfg.tune.dir).expanduser() if cfg.tune.dir else Path(out_dir)
    stored = folder / "tune.yaml"
    if stored.is_file():
        differs = _first_difference(_without_session(OmegaConf.load(stored)), _without_session(cfg))
        if differs:
            raise UserError(f"tune.dir={folder} holds a study with a different config ({differs} differs); "
                            f"use another tune.dir, or resume={folder}")
    return cfg, folder


def write_tune_config(cfg: DictConfig, folder: Path) -> None:
    """tune.yaml: what `resume=DIR` and joining workers continue (session keys as this worker has them)."""
    stored = OmegaConf.create(OmegaConf.to_container(cfg))
    with open_dict(stored):
        stored.resume, stored.final, stored.tune.worker = None, False, 0
    with atomic_path(folder / "tune.yaml") as tmp:
        OmegaConf.save(stored, tmp)


def base_overrides(folder: Path, overrides, choices: dict, space: dict) -> list[str]:
    """What `rlopt train` needs besides the tuned keys to run a trial's config: the config groups chosen
    (tune.yaml's own controller default included) and the tune command's other overrides of the run config
    (not tune's own keys, the session's or a tuned key's). Kept in the tune folder for the best override line."""
    path = folder / "overrides.json"
    if path.is_file():
        return read_json(path)
    given = {o.lstrip("+~").split("=", 1)[0] for o in overrides}
    keep = [f"{group}={option}" for group, option in choices.items() if group not in given and option is not None]
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        if key.split(".")[0] not in ("tune", "final", "resume", "hydra") and key not in SESSION_KEYS and key not in space:
            keep.append(override)
    write_json(path, keep)
    return keep


