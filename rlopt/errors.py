"""The one exception type for a user's mistake.

Anything raised as `UserError` is printed as a single line (no traceback) and the command exits
with status 2; everything else is a bug or an environment failure and keeps its traceback.
"""


class UserError(Exception):
    """A bad config value, a missing file, or another problem the user can fix."""
