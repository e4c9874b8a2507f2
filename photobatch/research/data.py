"""Where the research data is found: one rule for the tests, ``bench`` and the personal benchmark.

The data sets (Flickr8k photos and captions, HARRISON hashtags, the exif-py camera samples) never
ship with photobatch nor live in its repository. ``$PHOTOBATCH_DATA`` names a folder laid out like
the project's ``shared/data``; without it, ``../shared/data`` beside the checkout this code runs
from (an editable install or ``PYTHONPATH``) is used.
"""

from __future__ import annotations

import os
from pathlib import Path

from photobatch.core.errors import UserError

DATA_ENV = "PHOTOBATCH_DATA"
CHECKOUT = Path(__file__).resolve().parents[2]


class DataNotFound(UserError, LookupError):
    """The research data is not where the rule looks; the message names the path and the fix."""


def research_data(*parts: str) -> Path:
    """``parts`` inside the research data folder (the folder itself without them)."""
    env = os.environ.get(DATA_ENV)
    folder = Path(env).expanduser() if env else CHECKOUT.parent / "shared" / "data"
    path = folder.joinpath(*parts)
    if not path.exists():
        where = f"{DATA_ENV}={env}" if env else f"{DATA_ENV} unset, so ../shared/data"
        raise DataNotFound(
            f"{path}: no research data there ({where}); "
            f"set {DATA_ENV} to a folder laid out like shared/data"
        )
    return path
