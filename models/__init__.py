"""Model files shipped with photobatch, installed as the package ``photobatch.weights``.

Each model has a card (``*.md``) beside it saying what it was trained on and how to rebuild it.
"""

from pathlib import Path


def shipped(name: str) -> Path:
    """Path of a file shipped in this folder; a clear error names it when it is absent."""
    path = Path(__file__).with_name(name)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: shipped model file missing (reinstall photobatch)")
    return path
