"""Writing sidecars: where they go and how they reach disk; the formats themselves are plugins.

The core owns the promises every format shares: the original photo is never opened for writing,
an existing sidecar is merged by its writer (never clobbered), a file is rewritten only when its
content changes, and every write is atomic (temp file + rename in the same folder), so a crash or
a full disk leaves either the old sidecar or the new one, never half of one. The temp file a
killed scan leaves behind is removed by the next run that writes into that folder.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

from photobatch.core.config import ConfigError, SidecarConfig
from photobatch.core.hooks import SidecarError, SidecarWriter, sidecar_writers
from photobatch.core.records import PhotoRecord


def sidecar_path(photo: Path, suffix: str, options: SidecarConfig) -> Path:
    """``IMG_1.jpg.xmp`` (darktable/digiKam) or ``IMG_1.xmp``, beside the photo or mirrored."""
    name = photo.name + suffix if options.naming == "extension" else photo.stem + suffix
    if options.mirror_dir is None:
        return photo.with_name(name)
    relative = photo.parent.relative_to(photo.anchor)
    return options.mirror_dir.expanduser().absolute() / relative / name


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one rename, keeping the old file's permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class SidecarSync:
    """Brings every enabled sidecar of a photo up to date with its index record."""

    def __init__(self, options: SidecarConfig) -> None:
        available = sidecar_writers()
        unknown = [f for f in options.formats if f not in available]
        if unknown:
            raise ConfigError(
                f"sidecars.formats: no installed sidecar writer named {', '.join(unknown)} "
                f"(installed: {', '.join(sorted(available)) or 'none'})"
            )
        self.options = options
        self.writers: list[SidecarWriter] = [available[f] for f in options.formats]
        suffixes = "|".join(re.escape(w.suffix) for w in self.writers)
        # write_atomic's temp names: "." + sidecar name + "." + mkstemp's 8 characters + ".tmp".
        self._temp_name = re.compile(rf"\..+(?:{suffixes})\.[a-z0-9_]{{8}}\.tmp")
        self._started = time.time()
        self._swept: set[Path] = set()

    def write(self, record: PhotoRecord) -> list[str]:
        """Write or merge each sidecar; return problems as messages (the scan goes on)."""
        problems = []
        record = record.described(self.options.min_caption_confidence)
        for writer in self.writers:
            target = sidecar_path(record.path, writer.suffix, self.options)
            self._sweep(target.parent)
            try:
                existing = target.read_bytes() if target.exists() else None
                content = writer.render(record, existing)
                if content != existing:
                    write_atomic(target, content)
            except SidecarError as exc:
                problems.append(f"{target}: left untouched: {exc}")
            except OSError as exc:
                problems.append(f"{target}: cannot write sidecar: {exc.strerror or exc}")
        return problems

    def _sweep(self, folder: Path) -> None:
        """Delete the temp files a killed run left in ``folder``, once per folder and run.

        Only photobatch's own temp names older than this run are touched: the scan lock makes
        those orphans, and anything else in the folder is not ours.
        """
        if folder in self._swept:
            return
        self._swept.add(folder)
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if (
                        self._temp_name.fullmatch(entry.name)
                        and entry.is_file(follow_symlinks=False)
                        and entry.stat(follow_symlinks=False).st_mtime < self._started
                    ):
                        os.unlink(entry.path)
        except OSError:
            return  # housekeeping only: a real problem with the folder shows up in the write
