"""Model files shipped with photobatch, installed as the package ``photobatch.weights``.

Each model has a card (``*.md``) beside it saying what it was trained on and how to rebuild it.
"""

from pathlib import Path


def shipped(name: str) -> Path:
    """Path of a file shipped in this folder: how every model finds its shipped weights.

    Not checked here, so a model is still built without reading anything; its loader reports a
    missing file in one line naming it, as it does a damaged one.
    """
    return Path(__file__).with_name(name)
