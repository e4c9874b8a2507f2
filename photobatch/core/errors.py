"""The failures a user can fix, which the command line reports as one line instead of a traceback.

Library code raises a ``UserError`` subclass whose message already names the file and the
problem; ``photobatch.cli.base`` is the one place that turns it into ``photobatch: <message>``
and an exit code. Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix (bad input, a missing package): exit ``exit_code``."""

    exit_code = 1

    def line(self, command: str) -> str:
        """What the command line prints after ``photobatch: `` when ``command`` failed."""
        return str(self)


class MissingExtra(UserError):
    """An optional package is not installed; the message names the extra that brings it."""

    def __init__(self, extra: str, module: str) -> None:
        self.extra = extra
        self.module = module
        super().__init__(f"{module} is not installed: pip install 'photobatch[{extra}]'")

    def line(self, command: str) -> str:
        return (
            f"{command} needs the {self.extra} extra ({self.module} is not installed): "
            f"pip install 'photobatch[{self.extra}]'"
        )
