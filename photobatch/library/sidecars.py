"""Writing sidecars: where they go and how they reach disk; the formats themselves are plugins.

The core owns the promises every format shares: the original photo is never opened for writing,
an existing sidecar is merged by its writer (never clobbered), a file is rewritten only when its
content changes, and every write is atomic (temp file + rename in the same folder), so a crash or
a full disk leaves either the old sidecar or the new one, never half of one. The temp file a
killed scan leaves behind is removed by the next run that writes into that folder.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import time
from dataclasses import replace
from pathlib import Path

from photobatch.core.atomic import replacing, temp_name_pattern
from photobatch.core.config import ConfigError, SidecarConfig
from photobatch.core.hooks import SidecarError, SidecarWriter, sidecar_writers
from photobatch.core.records import PhotoRecord
from photobatch.library.discovery import is_image_name

# Far beyond any real sidecar (a few KB; one with a large embedded preview, a few hundred KB);
# a bigger file is not read into memory.
MAX_SIDECAR_BYTES = 8 * 1024 * 1024
# Opening never follows a link, and never blocks on a FIFO: what was opened is checked first.
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# What is found instead of a file, by ``stat.filemode``'s first letter.
_KINDS = {"d": "a folder", "p": "a named pipe", "c": "a device", "b": "a device", "s": "a socket"}


def sidecar_path(photo: Path, suffix: str, options: SidecarConfig) -> Path:
    """``IMG_1.jpg.xmp`` (darktable/digiKam) or ``IMG_1.xmp``, beside the photo or mirrored."""
    name = photo.name + suffix if options.naming == "extension" else photo.stem + suffix
    if options.mirror_dir is None:
        return photo.with_name(name)
    relative = photo.parent.relative_to(photo.anchor)
    return options.mirror_dir.expanduser().absolute() / relative / name


def read_existing(path: Path) -> bytes | None:
    """The sidecar at ``path`` (None: there is none) if it is a regular file of sane size.

    Anything else (a link, a FIFO, a device, a folder, a huge file) is not ours to read or to
    replace: it raises ``SidecarError``, and the caller leaves it as it is.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SidecarError(
                "a symbolic link, which photobatch neither follows nor replaces"
            ) from exc
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = _KINDS.get(stat.filemode(mode)[0], "not a plain file")
            raise SidecarError(f"not a regular file but {kind}")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(MAX_SIDECAR_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_SIDECAR_BYTES:
        raise SidecarError(f"larger than {MAX_SIDECAR_BYTES // 2**20} MB, far beyond any sidecar")
    return data


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one rename, keeping the old file's permissions (a mirror
    folder is made as needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as fh:
        fh.write(data)


def _empty(path: Path) -> bool:
    try:
        return os.lstat(path).st_size == 0
    except OSError:
        return True


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
        self._temp_name = re.compile(temp_name_pattern(f"(?:{suffixes})"))
        self._started = time.time()
        self._swept: set[Path] = set()
        # The last folder listed for basename naming, its mtime then, and its first photo by stem.
        self._listing: tuple[Path | None, int, dict[str, str]] = (None, 0, {})

    def write(self, record: PhotoRecord) -> list[str]:
        """Write or merge each sidecar; return problems as messages (the scan goes on).

        A photo with nothing to say (no caption shown, no keyword) gets no sidecar, and one
        holding nothing but what photobatch wrote earlier is removed (``_remove_ours``).
        """
        owner = self._owner(record.path)
        problems = []
        record = record.as_written(self.options.min_caption_confidence, self.options.write)
        if not record.keywords and not (record.analysis and record.analysis.caption):
            return self._remove_ours(record, owner)
        for writer in self.writers:
            target = sidecar_path(record.path, writer.suffix, self.options)
            if owner != record.path.name:
                problems.append(
                    f"{target}: not written for {record.path.name}: it is {owner}'s sidecar "
                    "(sidecars.naming: basename gives both the same one)"
                )
                continue
            self._sweep(target.parent)
            try:
                existing = read_existing(target)
                content = writer.render(record, existing)
                if content != existing:
                    write_atomic(target, content)
            except SidecarError as exc:
                problems.append(f"{target}: left untouched: {exc}")
            except OSError as exc:
                problems.append(f"{target}: cannot write sidecar: {exc.strerror or exc}")
        return problems

    def forget(self, record: PhotoRecord) -> list[str]:
        """The photo of ``record`` is gone: remove its sidecars where they hold nothing but
        what photobatch wrote; leave any other (the user's or another application's data)."""
        return self._remove_ours(record, self._owner(record.path), merge=False)

    def _remove_ours(self, record: PhotoRecord, owner: str, *, merge: bool = True) -> list[str]:
        """Take photobatch's part out of ``record``'s sidecars: remove one left with nothing
        (what a new one for no analysis would hold), and with ``merge`` write the rest back.
        Return problems as messages."""
        problems = []
        blank = replace(record, analysis=None)
        for writer in self.writers:
            target = sidecar_path(record.path, writer.suffix, self.options)
            if owner != record.path.name:
                continue  # basename naming: another photo's sidecar
            self._sweep(target.parent)
            try:
                existing = read_existing(target)
                if existing is None:
                    continue
                rest = writer.render(blank, existing)
                if rest == writer.render(blank, None):
                    target.unlink()
                elif merge and rest != existing:
                    write_atomic(target, rest)
            except SidecarError as exc:
                if merge:
                    problems.append(f"{target}: left untouched: {exc}")
            except OSError as exc:
                problems.append(f"{target}: cannot update sidecar: {exc.strerror or exc}")
        return problems

    def missing(self, photo: Path) -> bool:
        """Whether one of ``photo``'s sidecars is gone or empty (one ``lstat`` per format): a
        power cut right after a first write can leave either."""
        return any(_empty(sidecar_path(photo, w.suffix, self.options)) for w in self.writers)

    def move(self, old: Path, new: Path) -> list[str]:
        """Take the sidecars photobatch wrote for ``old`` along to ``new``, which was moved or
        renamed from there; return problems as messages.

        Only a sidecar that is a regular file with photobatch's own data in it moves, only where
        ``new`` has none yet (never clobbered), and under basename naming only when no other photo
        of ``old``'s name still uses it.
        """
        problems = []
        for writer in self.writers:
            source = sidecar_path(old, writer.suffix, self.options)
            target = sidecar_path(new, writer.suffix, self.options)
            if source == target or os.path.lexists(target) or self._owner(old) != old.name:
                continue
            try:
                existing = read_existing(source)
                if existing is None or not getattr(writer, "wrote", lambda _: False)(existing):
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                os.rename(source, target)
            except SidecarError:
                continue  # not a file photobatch wrote: it stays where it is
            except OSError as exc:
                problems.append(f"{source}: cannot move sidecar to {target}: {exc.strerror or exc}")
        return problems

    def _owner(self, photo: Path) -> str:
        """The name of the photo whose sidecar ``photo``'s is: itself, except under basename
        naming, where photos of one name (``IMG_1.jpg``, ``IMG_1.png``) share one sidecar and it
        belongs to the first of them in name order."""
        if self.options.naming != "basename":
            return photo.name
        folder = photo.parent
        try:
            stamp = folder.stat().st_mtime_ns
            if self._listing[:2] != (folder, stamp):
                first: dict[str, str] = {}
                with os.scandir(folder) as entries:
                    for name in sorted(e.name for e in entries if is_image_name(e.name)):
                        first.setdefault(Path(name).stem, name)
                self._listing = (folder, stamp, first)
        except OSError:
            return photo.name  # an unreadable folder shows up when the sidecar is written
        return self._listing[2].get(photo.stem, photo.name)

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
