"""Shared fixtures. Real data is found by ``photobatch.research.data``, never copied to the repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from photobatch.research import data as research


@pytest.fixture(scope="session")
def research_data() -> Path:
    """The research data folder ($PHOTOBATCH_DATA, else ../shared/data); only outside CI may a
    test skip for want of it."""
    try:
        return research.research_data()
    except research.DataNotFound as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc}: CI must always have it")
        pytest.skip(f"{exc} (outside CI)")
