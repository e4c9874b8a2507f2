"""The plugin interface: pluggy hook specs, and the manager that loads plugins from entry points.

First-party sidecar writers and exporters live in ``plugins/`` (installed as
``photobatch.plugins``) and implement the same hooks a third-party package would; they are
registered by module name (``DEFAULT_PLUGINS``), third-party ones through an entry point in the
``photobatch`` group naming a module of hookimpls. ``docs/plugins.md`` is the hook contract.

A third-party plugin is code the user installed, not photobatch's: one that cannot be loaded, or
that raises in a hook, is reported (``problems``, a line per failure) and the rest goes on
without it, its changes to the photos in hand discarded; it never costs the user a scan.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

import pluggy

from photobatch import __version__
from photobatch.core.records import Analysis, PhotoMetadata, PhotoRecord, PluginChanges
from photobatch.core.text import user_hashtags

if TYPE_CHECKING:
    import click

hookspec = pluggy.HookspecMarker("photobatch")
hookimpl = pluggy.HookimplMarker("photobatch")

DEFAULT_PLUGINS = (
    "photobatch.plugins.xmp",
    "photobatch.plugins.json_sidecar",
    "photobatch.plugins.export",
)
ENTRY_POINTS = "photobatch"


class SidecarError(Exception):
    """An existing sidecar cannot be merged safely; it is left untouched."""


class SidecarWriter(Protocol):
    """Renders one sidecar format; the core decides the path and writes it atomically."""

    name: str  # the name used in config (``sidecars.formats``), e.g. "xmp"
    suffix: str  # appended to the photo's name, e.g. ".xmp"

    def render(self, record: PhotoRecord, existing: bytes | None) -> bytes:
        """Return the sidecar's full new content, merged with ``existing`` (None: no file yet).

        Must keep everything the user or another application wrote; raise ``SidecarError``
        when ``existing`` cannot be parsed safely.
        """
        ...

    def wrote(self, existing: bytes) -> bool:
        """Whether ``existing`` holds what this writer wrote: only then does it follow a photo
        that was moved or renamed (a writer without this method leaves its files in place)."""
        ...


class Exporter(Protocol):
    """Writes index rows in one output format."""

    name: str  # the ``--format`` value, e.g. "csv"

    def export(self, rows: Iterable[dict[str, Any]], columns: list[str], out: IO[str]) -> int:
        """Write ``rows`` (dicts keyed by ``columns``) to ``out``; return how many were written."""
        ...


class AnalysedPhoto:
    """One photo as ``photobatch_after_analysis`` sees it: where it is, its EXIF, what the models
    made of it, and its hashtags and labels to change.

    ``hashtags`` (best first, each with its 0-1 score) and ``labels`` are copies as the plugins
    called before left them; the methods change them, each change recorded as the calling
    plugin's. ``analysis`` is the models' own output: read it, never change it.
    """

    def __init__(self, path: Path, metadata: PhotoMetadata, analysis: Analysis) -> None:
        self.path = path
        self.metadata = metadata
        self.analysis = analysis
        self._tags = {t: analysis.candidate_scores.get(t, 0.0) for t in analysis.candidates}
        self._labels = list(analysis.labels)
        self._set: set[str] = set()  # the hashtags plugins gave a score
        self._changes = PluginChanges()
        self._changed = False
        self._plugin = ""
        self._saved: tuple[dict[str, float], set[str], list[str], PluginChanges, bool] | None = None

    @property
    def hashtags(self) -> dict[str, float]:
        return dict(self._tags)

    @property
    def labels(self) -> list[str]:
        return list(self._labels)

    def set_hashtag(self, tag: str, score: float) -> None:
        """Add ``tag`` (``#`` and letter case do not matter) with a 0-1 score, or re-score it.

        The tags are ranked by score after the plugins ran, one a plugin set before the models'
        of the same score (then by the user's personal head, when one is trained); a tag this
        plugin adds is shown as its own.
        """
        words = user_hashtags(tag)
        if len(words) != 1:
            raise ValueError(f"{tag!r} is not one hashtag")
        if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
            raise ValueError(f"score {score!r} of #{words[0]} is not a number from 0 to 1")
        tag = words[0]
        if tag not in self._tags:
            self._changes.tags[tag] = self._plugin
        self._tags[tag] = round(float(score), 3)
        self._set.add(tag)
        self._changed = True

    def drop_hashtag(self, tag: str) -> None:
        """Remove ``tag`` if the photo has it."""
        words = user_hashtags(tag)
        if len(words) == 1 and self._tags.pop(words[0], None) is not None:
            self._set.discard(words[0])
            self._changes.tags.pop(words[0], None)
            self._changed = True

    def add_label(self, label: str) -> None:
        """Add a label (labels have no score: they are listed best first, added ones last)."""
        label = " ".join(str(label).split())
        if not label:
            raise ValueError("a label cannot be empty")
        if label not in self._labels:
            self._labels.append(label)
            self._changes.labels[label] = self._plugin
            self._changed = True

    def drop_label(self, label: str) -> None:
        """Remove a label if the photo has it."""
        if label in self._labels:
            self._labels.remove(label)
            self._changes.labels.pop(label, None)
            self._changed = True

    def _begin(self, plugin: str) -> None:
        self._plugin = plugin
        changes = PluginChanges(dict(self._changes.tags), dict(self._changes.labels))
        self._saved = (dict(self._tags), set(self._set), list(self._labels), changes, self._changed)

    def _undo(self) -> None:
        """Forget what the plugin in progress changed (it raised)."""
        assert self._saved is not None
        self._tags, self._set, self._labels, self._changes, self._changed = self._saved

    def result(self, plugins: str | None) -> Analysis:
        """The analysis with the plugins' changes: candidates ranked by score, at equal scores
        those a plugin set first (the models give several tags the same top score), else in
        their order; the models' own output kept beside them when anything changed."""
        a = self.analysis
        if not self._changed:
            return replace(a, plugins=plugins)
        ranked = sorted(self._tags.items(), key=lambda item: (-item[1], item[0] not in self._set))
        changes = replace(
            self._changes,
            model_candidates=list(a.candidates),
            model_scores=dict(a.candidate_scores),
            model_labels=list(a.labels),
        )
        return replace(
            a,
            candidates=[tag for tag, _ in ranked],
            candidate_scores=dict(ranked),
            labels=list(self._labels),
            plugins=plugins,
            plugin_changes=changes,
        )


class HookSpecs:
    @hookspec
    def photobatch_sidecar_writers(self) -> list[SidecarWriter]:
        """Return the sidecar writers this plugin provides."""

    @hookspec
    def photobatch_exporters(self) -> list[Exporter]:
        """Return the export formats this plugin provides."""

    @hookspec
    def photobatch_after_analysis(self, photos: list[AnalysedPhoto]) -> None:
        """Change the hashtags and labels of a batch of photos the models just analysed, before
        the personal head ranks them and they are written (``docs/plugins.md``)."""

    @hookspec
    def photobatch_after_commit(self, records: list[PhotoRecord]) -> None:
        """See a scan batch as the index now holds it: its sidecars written, its transaction
        committed (read-only)."""

    @hookspec
    def photobatch_register_commands(self, cli: click.Group) -> None:
        """Add commands to ``photobatch`` (``@cli.command()``)."""


@dataclass
class Loaded:
    """The process's plugins: the manager, the distribution of each entry point, and a line for
    each plugin that could not be loaded."""

    manager: pluggy.PluginManager
    packages: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (dist, version)
    problems: list[str] = field(default_factory=list)


@cache
def loaded() -> Loaded:
    """The first-party plugins, then every installed ``photobatch`` entry point that loads."""
    pm = pluggy.PluginManager("photobatch")
    pm.add_hookspecs(HookSpecs)
    found = Loaded(pm)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name)
    for entry in importlib.metadata.entry_points(group=ENTRY_POINTS):
        if pm.get_plugin(entry.name) is not None or pm.is_blocked(entry.name):
            continue
        dist = entry.dist.metadata["Name"] if entry.dist else "?"
        try:
            plugin = entry.load()
            pm.register(plugin, entry.name)
            try:
                pm.check_pending()  # a hook no spec names: a typo that would never be called
            except pluggy.PluginValidationError:
                pm.unregister(plugin, entry.name)
                raise
        except Exception as exc:  # a broken plugin must not take photobatch down with it
            found.problems.append(
                f"plugin {entry.name} ({dist}): not loaded: {_why(exc)}; photobatch runs without it"
            )
            continue
        found.packages[entry.name] = (dist, entry.dist.version if entry.dist else "?")
    return found


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager (``loaded``)."""
    return loaded().manager


def sidecar_writers() -> dict[str, SidecarWriter]:
    """All installed sidecar writers by name."""
    hook = plugin_manager().hook.photobatch_sidecar_writers
    return {w.name: w for group in hook() for w in group}


def exporters() -> dict[str, Exporter]:
    """All installed exporters by format name."""
    hook = plugin_manager().hook.photobatch_exporters
    return {e.name: e for group in hook() for e in group}


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin, as ``photobatch plugins`` lists it."""

    name: str
    package: str  # the distribution that installed it (photobatch's own: "photobatch")
    version: str
    hooks: list[str]


def plugin_infos() -> list[PluginInfo]:
    """Every loaded plugin with the hooks it implements, in loading order."""
    found = loaded()
    infos = []
    for name, plugin in found.manager.list_name_plugin():
        package, version = _package(name)
        callers = found.manager.get_hookcallers(plugin) or []
        infos.append(PluginInfo(name, package, version, sorted(c.name for c in callers)))
    return infos


def _package(plugin: str) -> tuple[str, str]:
    """The distribution that installed a plugin and its version (photobatch's own: its)."""
    return loaded().packages.get(plugin, ("photobatch", __version__))


def _implementations(hook_name: str) -> list[pluggy.HookImpl]:
    """The hook's implementations in pluggy's calling order (wrappers are not called)."""
    impls = getattr(plugin_manager().hook, hook_name).get_hookimpls()
    return [i for i in reversed(impls) if not (i.hookwrapper or i.wrapper)]


def _each(
    hook_name: str, kwargs: dict[str, Any], problems: list[str], before: Callable[[str], None]
) -> Iterable[tuple[str, bool]]:
    """Call each implementation of a hook on its own, so one that raises is reported (a line in
    ``problems``) and the others still run; yields (plugin name, whether it returned)."""
    for impl in _implementations(hook_name):
        before(impl.plugin_name)
        try:
            impl.function(*(kwargs[arg] for arg in impl.argnames))
        except Exception as exc:
            problems.append(f"plugin {impl.plugin_name}: {hook_name} failed: {_why(exc)}")
            yield impl.plugin_name, False
        else:
            yield impl.plugin_name, True


def analysis_plugins() -> str | None:
    """The plugins with an after-analysis hook, as stored with each analysis they ran on
    (``name@version+...``); None when there are none."""
    names = [i.plugin_name for i in _implementations("photobatch_after_analysis")]
    return "+".join(sorted(f"{n}@{_package(n)[1]}" for n in names)) or None


def after_analysis(photos: list[AnalysedPhoto], problems: list[str]) -> list[Analysis]:
    """Run every after-analysis hook on ``photos``; their analyses with the plugins' changes.

    A plugin that raises keeps none of its changes to these photos and is left out of their
    ``plugins``, so the next scan runs it on them again.
    """
    if not photos:
        return []
    ran = []

    def begin(plugin: str) -> None:
        for photo in photos:
            photo._begin(plugin)

    hook_problems: list[str] = []
    calls = _each("photobatch_after_analysis", {"photos": photos}, hook_problems, begin)
    for plugin, returned in calls:
        if returned:
            ran.append(f"{plugin}@{_package(plugin)[1]}")
        else:
            for photo in photos:
                photo._undo()
    problems.extend(
        f"{line}; its changes to {len(photos)} photos were not kept (tried again next scan)"
        for line in hook_problems
    )
    signature = "+".join(sorted(ran)) or None
    return [photo.result(signature) for photo in photos]


def after_commit(records: list[PhotoRecord], problems: list[str]) -> None:
    """Run every after-commit hook on a committed batch's records."""
    if records:
        list(_each("photobatch_after_commit", {"records": records}, problems, lambda _: None))


def has_hook(hook_name: str) -> bool:
    """Whether any loaded plugin implements ``hook_name`` (so a caller can skip building its
    arguments)."""
    return bool(_implementations(hook_name))


def register_commands(cli: click.Group, problems: list[str]) -> None:
    """Let every plugin add its commands to ``cli``; one that would replace a command already
    there (``scan``, another plugin's) is refused, and the command kept."""
    commands: dict[str, Any] = {}

    def before(plugin: str) -> None:
        commands.clear()
        commands.update(cli.commands)

    for plugin, _ in _each("photobatch_register_commands", {"cli": cli}, problems, before):
        for name, command in commands.items():
            if cli.commands.get(name) is not command:
                problems.append(f"plugin {plugin}: may not replace the command {name}")
                cli.commands[name] = command


def _why(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
