"""What every test of a one-line error checks, shared by the CLI tests."""

from __future__ import annotations

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
