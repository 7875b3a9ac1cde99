"""`rlopt <command> [args]`: pops the subcommand and hands the rest to that command's @hydra.main.

Hydra then provides `-m`, run folders, logging, `--cfg job`, `--help` and tab completion for
each command as usual. `rlopt report DIR...` also accepts run/sweep folders as plain
positional arguments; they become the `dirs=[...]` override.

The CLI answers before it imports anything heavy: Hydra composes the config through a light entry
here (`_entry`), which answers `--cfg`, `--help` and composition errors, runs the value checks
(`rlopt.config.check_values`), and only then imports the command's module (torch, and SB3 for an
agent) and hands it the composed config through Hydra's pass-through (`module.main(cfg)`). A mistake
thus costs the user about a second, not the ~5 s of importing torch. A signal outside a run (Ctrl-C
while starting up or while `rlopt report` writes) is one line too, exit status 130 (SIGINT) or 143 (SIGTERM).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from rlopt import startup
from rlopt.config import check_values, config_error_line, options, schema_keys
from rlopt.errors import RunInterrupted, UserError
from rlopt.hydra_app import hydra_entry
from rlopt.paths import conf_dir
from rlopt.schema import SCHEMAS

COMMANDS = {
    "train": ("rlopt.train", "train one run (or a sweep with -m)"),
    "evaluate": ("rlopt.evaluate", "deploy a saved controller, frozen, on fresh training runs"),
    "report": ("rlopt.report", "tables and figures from finished runs"),
    "tune": ("rlopt.tune", "tune a baseline's hyperparameters (Optuna, Hyperband pruning)"),
}

EXAMPLES = [
    "rlopt train",
    "rlopt train controller=ppo_3opt dataset=cifar10",
    "rlopt train -m controller=sgd,sam,ppo_2opt seed=0,1,2",
    "rlopt report outputs/sweeps/<folder>",
    "rlopt tune tune.n_trials=20 final=true",
]
USAGE = (
    "usage: rlopt {train,evaluate,report,tune} [hydra overrides and flags]\n\n"
    + "\n".join(f"  {name:<9} {help_}" for name, (_, help_) in COMMANDS.items())
    + "\n\nExamples:\n" + "".join(f"  {example}\n" for example in EXAMPLES)
)


def _quote(value: str) -> str:
    """`value` as a quoted string in Hydra's override grammar."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# Hydra's flags that take the next argument as their value (`--cfg job`, `-cn report`): that value
# is not a folder. Flags given as `--flag=value` are one argument and need no entry here.
# `--info` takes a value only when one of its choices follows (`rlopt report --info DIR` is `--info all`).
HYDRA_VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-name", "-cn", "--config-path", "-cp",
                     "--config-dir", "-cd", "--experimental-rerun"}
INFO_FLAGS, INFO_CHOICES = {"--info", "-i"}, {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}


def _is_flag_value(args: list[str], i: int) -> bool:
    before = args[i - 1] if i > 0 else ""
    return before in HYDRA_VALUE_FLAGS or (before in INFO_FLAGS and args[i] in INFO_CHOICES)


def _report_args(args: list[str]) -> list[str]:
    """Positional folders -> one `dirs=[...]` override; flags, their values and overrides pass through."""
    dirs, rest = [], []
    for i, arg in enumerate(args):
        (dirs if "=" not in arg and not arg.startswith("-") and not _is_flag_value(args, i) else rest).append(arg)
    if dirs:
        rest.append(f"dirs=[{','.join(_quote(d) for d in dirs)}]")
    return rest


def _resume_args(args: list[str]) -> list[str]:
    """`resume=DIR`: Hydra's run folder becomes DIR itself. Hydra would otherwise create a folder named from the
    default config (a phantom run) and log the continuation there. What DIR holds is for the run to find out
    (`rlopt.run.folder.resume_target`), once; a refusal leaves DIR as it was."""
    values = [a.split("=", 1)[1] for a in args if a.split("=", 1)[0].lstrip("+") == "resume"]
    if not values or values[-1] in ("", "null"):
        return args
    if "-m" in args or "--multirun" in args:  # every job of the sweep would continue the same one folder
        raise UserError(f"resume={values[-1]} continues one run and takes no -m; to continue a sweep's interrupted "
                        "runs, run the sweep again with the same hydra.sweep.dir (each run folder with a "
                        "checkpoint.pt resumes itself)")
    refuse_overrides_with_resume(args, values[-1])
    if not Path(values[-1]).expanduser().is_dir():  # Hydra would create it, to log a refusal into it
        raise UserError(f"resume={values[-1]} is not a run folder: there is no such folder")
    return [*args, f"hydra.run.dir={_quote(values[-1])}"]


def refuse_overrides_with_resume(args: list[str], folder: str) -> None:
    """A resumed run continues with the config saved in its folder, whole: an override beside `resume=` (say
    `trainer.epochs=9`) would be silently ignored, so it is refused, naming it. Hydra's own keys stay allowed."""
    for i, arg in enumerate(args):
        key = arg.split("=", 1)[0].lstrip("+~")
        if "=" not in arg or arg.startswith("-") or _is_flag_value(args, i) or key == "resume" or key.startswith("hydra"):
            continue
        raise UserError(f"{arg} is not allowed with resume={folder}: a resumed run continues with the config saved in "
                        f"{Path(folder) / '.hydra' / 'config.yaml'}, unchanged; to run with other settings, start a new run")


# The keys naming a folder a command writes: Hydra's run and sweep folders, and the report's and tune's own
OUTPUT_KEYS = ("hydra.run.dir", "hydra.sweep.dir", "out", "tune.dir")


def _unwritable_output(args: list[str]) -> str | None:
    """The first output folder (hydra.run.dir, hydra.sweep.dir, report's out, tune.dir, else ./outputs) that cannot
    be created: under a file, in a folder without write permission or on a read-only file system, or with a name
    longer than the file system allows.

    Hydra creates the run folder before any rlopt code runs and would answer a bad one with a
    stack trace; checking here turns it into one line.
    """
    targets = [a.split("=", 1)[1] for a in args if a.split("=", 1)[0].lstrip("+") in OUTPUT_KEYS]
    for target in targets or ["outputs"]:
        if "${" in target or target in ("", "null"):
            continue
        path = Path(target).absolute()
        probe = path
        while not os.path.exists(probe):  # False for a name too long too (Path.exists raises there)
            probe = probe.parent
        if not probe.is_dir() or not os.access(probe, os.W_OK):
            why = "not a folder" if not probe.is_dir() else "read-only file system" if _read_only(probe) else "not writable"
            return f"{target} (at {probe}: {why})"
        longest = os.pathconf(probe, "PC_NAME_MAX")
        too_long = next((part for part in path.relative_to(probe).parts if len(part.encode()) > longest), None)
        if too_long is not None:
            return f"{target} (a folder name of {len(too_long.encode())} bytes; the file system allows {longest})"
    return None


def _new_parents(command: str, args: list[str]) -> list[Path]:
    """The folders above a single run's output folder that do not exist yet, deepest first: Hydra makes them with
    it, and a refused command removes them again. They are the leading components of the folder's template
    (`hydra.run.dir`, report's `out`: as given, else as in conf/COMMAND.yaml) up to the first that names a
    value of the run (`outputs/runs` of `outputs/runs/${now:...}_...`)."""
    if "-m" in args or "--multirun" in args:  # a sweep records each job's failure in its folder
        return []
    given = {arg.split("=", 1)[0].lstrip("+"): arg.split("=", 1)[1].strip("'\"") for arg in args
             if "=" in arg and not arg.startswith("-")}
    defaults = OmegaConf.to_container(OmegaConf.load(Path(conf_dir()) / f"{command}.yaml"), resolve=False)
    template = given.get("hydra.run.dir", defaults["hydra"]["run"]["dir"])
    if template == "${out}":
        template = given.get("out", defaults["out"])
    fixed = []
    for part in Path(template).parts[:-1]:
        if "${" in part:
            break
        fixed.append(part)
    return [folder for folder in (Path(*fixed[:n]).absolute() for n in range(len(fixed), 0, -1)) if not folder.exists()]


def _remove_empty(folders: list[Path]) -> None:
    """Remove each of `folders` (deepest first) that is an empty folder: one that now holds something stays."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _read_only(folder: Path) -> bool:
    return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)


def command_help(command: str) -> str:
    """`rlopt COMMAND --help`: the command's config groups with their options and its top-level keys, from conf/ and
    the schema, without composing anything (Hydra's own help deep-copies the config store for each of its ~100 group
    listings: seconds). The composed config itself is `--cfg job`; Hydra's flags, `--hydra-help`."""
    keys = schema_keys(SCHEMAS["schema"][command])
    groups = [] if "controller" not in keys else [d.name for d in sorted(Path(conf_dir()).iterdir())
                                                   if d.is_dir() and d.name != "hydra"]
    lines = [f"usage: rlopt {command} [group=option | key=value ...] [-m] [--cfg job] [--hydra-help]", "",
             f"{COMMANDS[command][1]}", ""]
    if groups:
        lines += ["config groups (group=option; a preset with +, e.g. +debug=tiny):",
                  *(f"  {group}: {', '.join(options(group))}" for group in groups), ""]
    lines += [f"top-level keys: {', '.join(keys)}",
              f"rlopt {command} --cfg job [overrides] prints the composed config with every value; "
              f"rlopt {command} --hydra-help shows Hydra's own flags and groups"]
    return "\n".join(lines)


def _entry(command: str):
    """The `@hydra.main` of `command`, light: Hydra composes the config (and answers `--cfg`, `--help` and
    composition errors) before anything heavy is imported. A single run's values are then checked
    (`check_values`, through `hydra_entry`, so a mistake is refused as any refusal is, in about a second); a
    sweep's jobs are checked by the command itself, which records each failure in its job's folder. Only then is
    the command's module imported and handed the config through Hydra's pass-through, `module.main(cfg)`. Each
    command's YAML names its job (`hydra.job.name`; Hydra would name it after this file), so its log keeps its name."""

    @hydra.main(version_base="1.3", config_path=conf_dir(), config_name=command)
    def entry(cfg: DictConfig) -> None:
        if HydraConfig.get().mode == RunMode.RUN:  # a refusal: one line, exit 2, the folder Hydra made removed
            hydra_entry(command, cfg, lambda checked, _: check_values(command, checked))
        importlib.import_module(COMMANDS[command][0]).main(cfg)

    return entry


def _interrupted(signum: int, frame) -> None:
    raise RunInterrupted(signum)


def main(argv: list[str] | None = None) -> None:
    """`rlopt COMMAND ...`. SIGTERM outside a run raises `RunInterrupted` like SIGINT's KeyboardInterrupt (inside
    one, the run's own handler takes over and leaves it resumable); either ends the command with one line."""
    startup.release()
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        sys.exit(0 if args else 2)
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"rlopt: error: unknown command '{command}'; available: {', '.join(COMMANDS)}", file=sys.stderr)
        sys.exit(2)
    previous = signal.signal(signal.SIGTERM, _interrupted)
    try:
        _run(command, rest)
    except (KeyboardInterrupt, RunInterrupted) as err:
        stopped = err if isinstance(err, RunInterrupted) else RunInterrupted(signal.SIGINT)
        print(stopped.before_run_line(command), file=sys.stderr)
        sys.exit(128 + stopped.signum)
    except HydraException:  # re-raised with HYDRA_FULL_ERROR=1, trace and all (a missing config is an OSError too)
        raise
    except OSError as err:  # before any run started (Hydra creating its folder or log): a full disk, a vanished folder
        print(f"rlopt {command}: error: {err}", file=sys.stderr)
        sys.exit(1)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(command: str, rest: list[str]) -> None:
    if "--help" in rest or "-h" in rest:
        print(command_help(command))
        return
    if command == "report":
        rest = _report_args(rest)
    try:
        if command == "train":
            rest = _resume_args(rest)
    except UserError as err:
        print(f"rlopt {command}: error: {err}", file=sys.stderr)
        sys.exit(2)
    bad_output = None if "--cfg" in rest else _unwritable_output(rest)
    if bad_output:
        print(f"rlopt {command}: error: cannot write the output folder {bad_output}", file=sys.stderr)
        sys.exit(2)
    sys.argv = [f"rlopt-{command}", *rest]
    made = _new_parents(command, rest)
    full_error = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises its errors instead of printing them over several lines
    try:
        _entry(command)()
    except SystemExit as exit_:
        if exit_.code == 2:  # refused: its run folder is gone (`hydra_entry`), and so are the empty ones Hydra made above it
            _remove_empty(made)
        raise
    except HydraException as err:  # composition: a stray key, a wrong type, an unknown option, a bad override
        if full_error == "1":
            raise
        print(f"rlopt {command}: error: {config_error_line(err, command)}", file=sys.stderr)
        sys.exit(2)
    finally:
        if full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = full_error


if __name__ == "__main__":
    main()
