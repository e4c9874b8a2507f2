"""All settings in one typed place.

Precedence: command-line options > environment (``PHOTOBATCH_CONFIG``, ``PHOTOBATCH_INDEX``) >
config file > the defaults below. ``config.example.yaml`` documents every key; a test keeps the two
in step. An unknown key or a value of the wrong kind is a ``ConfigError`` that names the key.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from photobatch.core.errors import UserError


class ConfigError(UserError):
    """A config file or value is invalid; the message names the file and the key."""


def data_home() -> Path:
    """photobatch's data folder under the XDG data dir (the default index, a trained captioner,
    feature caches)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "photobatch"


def cache_home() -> Path:
    """photobatch's cache folder under the XDG cache dir: files it can always make again."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "photobatch"


def default_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "photobatch" / "config.yaml"


@dataclass(frozen=True)
class SidecarConfig:
    formats: tuple[str, ...] = ("xmp",)  # installed writers to run; "json" is available too
    naming: Literal["extension", "basename"] = "extension"  # IMG_1.jpg.xmp or IMG_1.xmp
    mirror_dir: Path | None = None  # write sidecars under this folder instead of beside photos
    # A caption less likely than this to name only what the photo shows is not written as a
    # description: the describe point of the shipped grounding (models/GROUNDING.md).
    min_caption_confidence: float = 0.5


@dataclass(frozen=True)
class CaptionerConfig:
    model: Path | None = None  # None: the model shipped in models/
    beam_size: int = 5
    max_length: int = 20
    min_length: int = 3
    length_penalty: float = 0.7


@dataclass(frozen=True)
class GroundingConfig:
    model: Path | None = None  # None: the heads shipped in models/


@dataclass(frozen=True)
class HashtagConfig:
    max_tags: int = 10
    min_tags: int = 3


@dataclass(frozen=True)
class WatchConfig:
    settle_seconds: float = 5.0  # a file must keep its size and mtime this long before processing
    poll: bool = False  # poll instead of inotify (network filesystems are polled regardless)


@dataclass(frozen=True)
class RayConfig:
    address: str | None = None  # None: a Ray instance on this machine, started for the scan
    actors: int = 0  # model actors; 0: one per GPU in the cluster, else one per node


@dataclass(frozen=True)
class Config:
    index: Path = field(default_factory=lambda: data_home() / "index.db")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int = 32
    gpu_batch_size: int = 128  # photos per model batch when the models run on CUDA
    workers: int = 2  # decode/EXIF worker processes
    top_labels: int = 5
    sidecars: SidecarConfig = field(default_factory=SidecarConfig)
    captioner: CaptionerConfig = field(default_factory=CaptionerConfig)
    grounding: GroundingConfig = field(default_factory=GroundingConfig)
    hashtags: HashtagConfig = field(default_factory=HashtagConfig)
    watch: WatchConfig = field(default_factory=WatchConfig)
    engine: Literal["local", "ray"] = "local"  # where `scan` runs the heavy work
    ray: RayConfig = field(default_factory=RayConfig)

    @property
    def personalizer_path(self) -> Path:
        """The personal hashtag head trained on this index's imported posts."""
        return personal_dir(self.index) / "personalizer.pt"


def personal_dir(index: Path) -> Path:
    """The folder of one index's personal state: its trained head and imported Instagram media.

    Named after the index file (``index.db`` -> ``index.db.personal/``, beside it, as SQLite's
    own ``index.db-wal``), so two indexes in one folder never share a head or media; keeping the
    whole file name keeps ``a.db`` and ``a.sqlite`` apart. Beside rather than inside, because the
    index is a single SQLite file. Move or back up the two together.
    """
    return index.with_name(index.name + ".personal")


def load_config(path: Path | None = None, *, index: Path | None = None) -> Config:
    """Build the effective config from a file, the environment and explicit overrides.

    ``path`` and ``index`` are the command-line values (None when not given).
    """
    if path is None and os.environ.get("PHOTOBATCH_CONFIG"):
        path = Path(os.environ["PHOTOBATCH_CONFIG"])
    raw: dict[str, Any] = {}
    if path is not None:
        raw = _read_yaml(path)
    elif default_config_path().is_file():
        path = default_config_path()
        raw = _read_yaml(path)
    config = _build(Config, raw, source=str(path), prefix="")
    if index is None and os.environ.get("PHOTOBATCH_INDEX"):
        index = Path(os.environ["PHOTOBATCH_INDEX"])
    if index is not None:
        config = dataclasses.replace(config, index=index)
    return dataclasses.replace(config, index=config.index.expanduser().absolute())


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}): "
            "save the config file as UTF-8"
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """pyyaml's problem and where it is, on one line (its message quotes the text below it)."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


def _build(cls: type, raw: dict[str, Any], *, source: str, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = f"{prefix}{key}"
        if key not in known:
            choices = ", ".join(sorted(known))
            raise ConfigError(f"{source}: unknown key '{name}' (known here: {choices})")
        values[key] = _coerce(hints[key], value, source=source, name=name)
    return cls(**values)


def _coerce(tp: Any, value: Any, *, source: str, name: str) -> Any:
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{source}: '{name}' must be {expected}, not {value!r}")

    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad("a mapping")
        return _build(tp, value, source=source, prefix=f"{name}.")
    if origin in (types.UnionType, typing.Union):
        options = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(options[0], value, source=source, name=name)
    if origin is Literal:
        if value not in get_args(tp):
            raise bad("one of " + ", ".join(repr(a) for a in get_args(tp)))
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad("a list of names")
        return tuple(value)
    if tp is Path:
        if not isinstance(value, str):
            raise bad("a path")
        return Path(value).expanduser()
    if tp is str:
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad("a whole number >= 0")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("a number")
        return float(value)
    raise TypeError(f"unsupported config type {tp!r} for {name}")
