"""SQLite's failures as one line naming the index and what the user can do about them."""

from __future__ import annotations

import functools
import inspect
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from photobatch.core.errors import UserError

# What SQLite's primary error codes mean for the user.
SQLITE_ADVICE = {
    "SQLITE_FULL": "the disk holding the index is full: free some space",
    "SQLITE_CORRUPT": "the index is damaged: restore a backup, or move it away and scan again",
    "SQLITE_NOTADB": "not an SQLite database",
    "SQLITE_READONLY": "the index (or its folder) is read-only",
    "SQLITE_CANTOPEN": "the index or its folder cannot be opened",
    "SQLITE_IOERR": "a disk error while using the index",
}


class IndexOpenError(UserError):
    """The index file cannot be used (newer schema, not a photobatch index, unreadable)."""


class IndexFailure(UserError):
    """SQLite failed while using the index (disk full, damaged pages, read-only folder)."""


def sqlite_problem(exc: BaseException) -> str:
    """SQLite's message, preceded by what its error code means for the user when known."""
    code = "_".join(getattr(exc, "sqlite_errorname", "").split("_")[:2])
    return f"{SQLITE_ADVICE[code]} ({exc})" if code in SQLITE_ADVICE else str(exc)


def named_sqlite_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` (a generator too) of an object with a ``path``, SQLite's errors raised as an
    ``IndexFailure`` naming that path."""

    @contextmanager
    def reported(owner: Any) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise IndexFailure(f"{owner.path}: {sqlite_problem(exc)}") from exc

    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def generate(self: Any, *args: Any, **kwargs: Any) -> Any:
            with reported(self):
                yield from method(self, *args, **kwargs)

        return generate

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        with reported(self):
            return method(self, *args, **kwargs)

    return call


def every_public_method(cls: type) -> type:
    """Every public method of ``cls`` reports SQLite's errors as one line naming the index."""
    for name, member in list(vars(cls).items()):
        if inspect.isfunction(member) and not name.startswith("_"):
            setattr(cls, name, named_sqlite_errors(member))
    return cls
