"""All settings in one typed place.

Precedence: command-line options > environment (``PHOTOBATCH_CONFIG``, ``PHOTOBATCH_INDEX``) >
config file > the defaults below. ``config.example.yaml`` documents every key; a test keeps the two
in step. An unknown key, a value of the wrong kind or out of its range is a ``ConfigError`` that
names the key and quotes at most ``QUOTE_CHARS`` characters of the value: every number is checked
here, once (finite, within the bounds its field declares with :func:`setting`), so the code that
uses the settings takes them as they are.
"""

from __future__ import annotations

import dataclasses
import math
import os
import reprlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from photobatch.core.errors import UserError


class ConfigError(UserError):
    """A config file or value is invalid; the message names the file and the key."""


# A config file is a few kB; a bigger one is not read into memory.
MAX_CONFIG_BYTES = 1 << 20
# How much of a bad value an error message quotes: enough to recognise it, never a whole file.
QUOTE_CHARS = 80


def setting(default: Any, low: float, high: float) -> Any:
    """A numeric setting's default and the range it must lie in (bounds included)."""
    return field(default=default, metadata={"range": (low, high)})


def quote(value: Any) -> str:
    """``repr(value)`` cut to ``QUOTE_CHARS`` characters, in time and memory bounded whatever the
    value (a YAML alias bomb is a list of lists nine deep that shares its items)."""
    short = reprlib.Repr()
    short.maxlevel, short.maxlist, short.maxdict = 3, 8, 8
    short.maxstring, short.maxother, short.maxlong = QUOTE_CHARS, QUOTE_CHARS, 40
    text = short.repr(value)
    return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 3] + "..."


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
    min_caption_confidence: float = setting(0.5, 0, 1)
    # auto: the models' output that passes the threshold, and what you approved or edited;
    # approved: of the models' output, only what you approved in `photobatch review`
    write: Literal["auto", "approved"] = "auto"


@dataclass(frozen=True)
class CaptionerConfig:
    model: Path | None = None  # None: the model shipped in models/
    beam_size: int = setting(5, 1, 100)
    max_length: int = setting(20, 1, 100)  # words
    min_length: int = setting(3, 0, 100)  # at most max_length
    length_penalty: float = setting(0.7, 0, 10)


@dataclass(frozen=True)
class GroundingConfig:
    model: Path | None = None  # None: the heads shipped in models/


@dataclass(frozen=True)
class HashtagConfig:
    max_tags: int = setting(10, 0, 100)
    min_tags: int = setting(3, 0, 100)  # at most max_tags


@dataclass(frozen=True)
class WatchConfig:
    # A file must keep its size and mtime this long before processing (at most a day).
    settle_seconds: float = setting(5.0, 0, 86400)
    poll: bool = False  # poll instead of inotify (network filesystems are polled regardless)


def host_port_problem(address: str) -> str | None:
    """Why ``address`` is not a Ray cluster's ``HOST:PORT`` (or ``auto``), None when it is.

    A host name is at most 253 characters in labels of at most 63 (RFC 1035): the resolver
    cannot even encode a longer one.
    """
    if address in ("auto", "local"):
        return None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not (port.isdigit() and len(port) <= 5) or not 0 < int(port) < 65536:
        return "is not host:port (as 'ray start --head' prints), nor auto"
    labels = host.strip("[]").split(".")
    if len(host) > 253 or any(not label or len(label) > 63 for label in labels):
        return "does not name a host (at most 253 characters, in dot-separated parts of 1-63)"
    return None


@dataclass(frozen=True)
class ReviewConfig:
    # Thumbnails of `photobatch review` and `report --html`, under $XDG_CACHE_HOME/photobatch;
    # the least recently used go first once they take more than this
    thumbnail_cache_mb: int = setting(1024, 1, 1_000_000)


@dataclass(frozen=True)
class RayConfig:
    # None: a Ray instance on this machine, started for the scan; else HOST:PORT or "auto".
    address: str | None = field(default=None, metadata={"check": host_port_problem})
    actors: int = setting(0, 0, 10000)  # model actors; 0: one per GPU, else one per node


@dataclass(frozen=True)
class Config:
    index: Path = field(default_factory=lambda: data_home() / "index.db")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int = setting(32, 1, 4096)
    gpu_batch_size: int = setting(128, 1, 4096)  # photos per model batch on CUDA
    workers: int = setting(2, 1, 256)  # decode/EXIF worker threads
    top_labels: int = setting(5, 0, 1000)  # of ImageNet's 1000 classes
    sidecars: SidecarConfig = field(default_factory=SidecarConfig)
    captioner: CaptionerConfig = field(default_factory=CaptionerConfig)
    grounding: GroundingConfig = field(default_factory=GroundingConfig)
    hashtags: HashtagConfig = field(default_factory=HashtagConfig)
    watch: WatchConfig = field(default_factory=WatchConfig)
    engine: Literal["local", "ray"] = "local"  # where `scan` runs the heavy work
    ray: RayConfig = field(default_factory=RayConfig)
    review: ReviewConfig = field(default_factory=ReviewConfig)

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
    check_relations(config, str(path))
    if index is None and os.environ.get("PHOTOBATCH_INDEX"):
        index = Path(os.environ["PHOTOBATCH_INDEX"])
    if index is not None:
        config = dataclasses.replace(config, index=index)
    return dataclasses.replace(config, index=config.index.expanduser().absolute())


def check_relations(config: Config, source: str) -> None:
    """The settings bounded by other settings, which a range alone cannot say."""
    pairs = [
        ("captioner.min_length", config.captioner.min_length, "captioner.max_length",
         config.captioner.max_length),
        ("hashtags.min_tags", config.hashtags.min_tags, "hashtags.max_tags",
         config.hashtags.max_tags),
    ]  # fmt: skip
    for low_name, low, high_name, high in pairs:
        if low > high:
            raise ConfigError(
                f"{source}: '{low_name}' ({low}) is more than '{high_name}' ({high}): "
                f"make it at most {high}"
            )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}): "
            "save the config file as UTF-8"
        ) from exc
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES >> 20} MB: not a config file")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from exc
    except ValueError as exc:  # an integer of thousands of digits, which Python will not parse
        raise ConfigError(f"{path}: not a usable config: {str(exc)[:QUOTE_CHARS]}") from exc
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
    known = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = f"{prefix}{key}"
        if key not in known:
            choices = ", ".join(sorted(known))
            raise ConfigError(f"{source}: unknown key {quote(name)} (known here: {choices})")
        values[key] = coerce_setting(known[key], hints[key], value, source=source, name=name)
    return cls(**values)


def coerce_setting(
    spec: dataclasses.Field[Any], tp: Any, value: Any, *, source: str, name: str
) -> Any:
    """``value`` as field ``spec`` of type ``tp`` takes it, checked against its range or check;
    ``source`` and ``name`` say where it came from (a file and a key, or a command-line option)."""
    coerced = _coerce(tp, value, source=source, name=name)
    low, high = spec.metadata.get("range", (None, None))
    if low is not None and coerced is not None and not low <= coerced <= high:
        kind = "a whole number" if tp is int else "a number"
        raise ConfigError(
            f"{source}: '{name}' must be {kind} from {low} to {high}, not {quote(value)}"
        )
    check = spec.metadata.get("check")
    if check is not None and coerced is not None and (problem := check(coerced)):
        raise ConfigError(f"{source}: '{name}' {quote(value)} {problem}")
    return coerced


def override(config: Config, section: str, key: str, value: Any, option: str) -> Config:
    """``config`` with ``section.key`` set from command-line ``option``, checked as the config
    file's value is."""
    part = getattr(config, section)
    spec = {f.name: f for f in dataclasses.fields(part)}[key]
    tp = typing.get_type_hints(type(part))[key]
    coerced = coerce_setting(spec, tp, value, source="command line", name=option)
    return dataclasses.replace(config, **{section: dataclasses.replace(part, **{key: coerced})})


def _coerce(tp: Any, value: Any, *, source: str, name: str) -> Any:
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{source}: '{name}' must be {expected}, not {quote(value)}")

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
        if not isinstance(value, str) or not value.strip() or "\0" in value:
            raise bad("a path (null for the default)")
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
        if isinstance(value, int) and abs(value) > 1e300:  # float() would overflow
            raise bad("a finite number")
        if not math.isfinite(value):
            raise bad("a finite number")
        return float(value)
    raise TypeError(f"unsupported config type {tp!r} for {name}")
