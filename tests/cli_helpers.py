"""What the CLI tests share: the check of a one-line error, and a child process Ctrl-C reaches."""

from __future__ import annotations

import signal

from click.testing import Result


def one_line(result: Result, code: int = 1) -> str:
    """The single stderr line of a failed command, after checking there is nothing else."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("photobatch: "), lines[0]
    return lines[0]


def interruptible() -> None:
    """``preexec_fn`` of a child the test stops with SIGINT: Ctrl-C reaches it as it would from a
    terminal, even where the tests themselves run with SIGINT ignored (a background job of a
    script), which every child would otherwise inherit and rightly keep ignoring."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
