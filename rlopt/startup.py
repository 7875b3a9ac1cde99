"""Ctrl-C while `rlopt ...` starts: one line and exit status 130, as at any later moment, not a traceback.

The command's first ~0.3 s go to imports (Hydra's, as `rlopt/__init__` registers the config schemas), before
`rlopt.cli.main` is there to catch a KeyboardInterrupt. So when the process is the rlopt command (its console
script, or `python -m rlopt`), importing rlopt installs a SIGINT handler that says so in main's words and exits;
`main` puts Python's own back as it begins. Importing rlopt in any other program leaves its signals alone.
"""

from __future__ import annotations

import os
import signal
import sys


def _interrupted(signum: int, frame) -> None:
    command = " ".join(["rlopt", *[arg for arg in sys.argv[1:2] if not arg.startswith("-")]])
    print(f"{command}: interrupted by {signal.Signals(signum).name} before it finished", file=sys.stderr)
    raise SystemExit(128 + signum)


def guard() -> None:
    """In the rlopt command only (`rlopt ...`; `python -m rlopt ...`, which imports this package with `sys.argv[0]` "-m"),
    not in the worker processes it spawns (which are given its argv): a SIGINT until `release` ends it quietly."""
    first = sys.argv[0] if sys.argv else ""  # an embedded interpreter may have no argv
    m = sys.orig_argv.index("-m") if "-m" in sys.orig_argv else -1
    command = os.path.basename(first) == "rlopt" or (first == "-m" and sys.orig_argv[m + 1:m + 2] == ["rlopt"])
    spawning = sys.modules.get("multiprocessing")  # a spawned child has it loaded (and named) before it imports rlopt
    if command and (spawning is None or spawning.current_process().name == "MainProcess"):
        signal.signal(signal.SIGINT, _interrupted)


def release() -> None:
    """From here on a SIGINT raises KeyboardInterrupt again, which the command turns into its one line."""
    if signal.getsignal(signal.SIGINT) is _interrupted:
        signal.signal(signal.SIGINT, signal.default_int_handler)
