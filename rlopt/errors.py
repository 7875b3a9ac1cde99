"""The one exception type for a user's mistake.

Anything raised as `UserError` is printed as a single line (no traceback) and the command exits
with status 2; everything else is a bug or an environment failure and keeps its traceback.
"""

import signal


class UserError(Exception):
    """A bad config value, a missing file, or another problem the user can fix."""


class RunRefused(UserError):
    """A run folder that this process must leave as it is: held by another process, or holding an
    interrupted run that this config or its files do not match. Nothing is written into it, not even
    a failed summary."""


class RunsFailed(Exception):
    """Some of a command's several runs failed (e.g. `rlopt evaluate runs=K`): each one's summary.json holds its
    error and traceback already, so the command says how many and where in one line and exits with status 1."""


class RunInterrupted(BaseException):
    """SIGINT or SIGTERM arrived during a run (raised by `rlopt.run.interrupts`); a BaseException, like
    KeyboardInterrupt, so that no `except Exception` swallows it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    def before_run_line(self, command: str) -> str:
        """What `rlopt COMMAND` says when the signal came outside a run (starting up, or between runs)."""
        return f"rlopt {command}: interrupted by {signal.Signals(self.signum).name} before it finished"
