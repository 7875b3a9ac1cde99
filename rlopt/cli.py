"""`rlopt <command> [args]`: pops the subcommand and hands the rest to that command's @hydra.main.

Hydra then provides `-m`, run folders, logging, `--cfg job`, `--help` and tab completion for
each command as usual. `rlopt report DIR...` also accepts run/sweep folders as plain
positional arguments; they become the `dirs=[...]` override.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train": ("rlopt.train", "train one run (or a sweep with -m)"),
    "evaluate": ("rlopt.evaluate", "deploy a saved controller, frozen, on fresh training runs"),
    "report": ("rlopt.report", "tables and figures from finished runs"),
}

USAGE = "usage: rlopt {train,evaluate,report} [hydra overrides and flags]\n\n" + "\n".join(
    f"  {name:<9} {help_}" for name, (_, help_) in COMMANDS.items()
) + "\n\nExamples:\n  rlopt train\n  rlopt train controller=ppo_3opt dataset=cifar10\n  rlopt train -m controller=sgd,sam,ppo_2opt seed=0,1,2\n  rlopt report outputs/sweeps/<folder>\n"


def _report_args(args: list[str]) -> list[str]:
    """Positional folders -> one `dirs=[...]` override; everything else passes through."""
    dirs = [a for a in args if "=" not in a and not a.startswith("-")]
    rest = [a for a in args if a not in dirs]
    if dirs:
        quoted = ",".join("'" + d.replace("\\", "\\\\").replace("'", "\\'") + "'" for d in dirs)
        rest.append(f"dirs=[{quoted}]")
    return rest


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
    module = importlib.import_module(COMMANDS[command][0])
    sys.argv = [f"rlopt-{command}", *rest]
    module.main()


if __name__ == "__main__":
    main()
