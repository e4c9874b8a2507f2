"""Shared fixtures. Real data lives in ../shared beside the repository (never copied into it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def shared() -> Path:
    """The shared data folder; only outside CI may a test skip for want of it."""
    if not (SHARED / "data").is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"shared data missing at {SHARED}: CI must always have it")
        pytest.skip(f"shared data not found at {SHARED} (outside CI)")
    return SHARED
