"""`rlopt <command> [args]`: pops the subcommand and hands the rest to that command's @hydra.main.

Hydra then provides `-m`, run folders, logging, `--cfg job`, `--help` and tab completion for
each command as usual. `rlopt report DIR...` also accepts run/sweep folders as plain
positional arguments; they become the `dirs=[...]` override.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from hydra.errors import HydraException

from rlopt.config import config_error_line
from rlopt.errors import UserError

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
    if not Path(values[-1]).expanduser().is_dir():  # Hydra would create it, to log a refusal into it
        raise UserError(f"resume={values[-1]} is not a run folder: there is no such folder")
    return [*args, f"hydra.run.dir={_quote(values[-1])}"]


def _unwritable_output(args: list[str]) -> str | None:
    """The first output folder (hydra.run.dir / hydra.sweep.dir, else ./outputs) that cannot be created.

    Hydra creates the run folder before any rlopt code runs and would answer a bad one with a
    stack trace; checking here turns it into one line.
    """
    targets = [a.split("=", 1)[1] for a in args if a.split("=", 1)[0].lstrip("+") in ("hydra.run.dir", "hydra.sweep.dir")]
    for target in targets or ["outputs"]:
        if "${" in target:
            continue
        probe = Path(target).absolute()
        while not probe.exists():
            probe = probe.parent
        if not probe.is_dir() or not os.access(probe, os.W_OK):
            return f"{target} (at {probe}: {'not a folder' if not probe.is_dir() else 'not writable'})"
    return None


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        sys.exit(0 if args else 2)
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"rlopt: error: unknown command '{command}'; available: {', '.join(COMMANDS)}", file=sys.stderr)
        sys.exit(2)
    if command == "report":
        rest = _report_args(rest)
    if command == "train":
        try:
            rest = _resume_args(rest)
        except UserError as err:
            print(f"rlopt train: error: {err}", file=sys.stderr)
            sys.exit(2)
    bad_output = None if "--help" in rest or "--cfg" in rest else _unwritable_output(rest)
    if bad_output:
        print(f"rlopt {command}: error: cannot write the output folder {bad_output}", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(COMMANDS[command][0])
    sys.argv = [f"rlopt-{command}", *rest]
    full_error = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises its errors instead of printing them over several lines
    try:
        module.main()
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
