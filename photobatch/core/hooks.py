"""The plugin interface: pluggy hook specs, and the manager that loads plugins from entry points.

First-party sidecar writers and exporters live in ``plugins/`` (installed as
``photobatch.plugins``) and implement the same hooks a third-party package would; they are
registered by module name (``DEFAULT_PLUGINS``), third-party ones through an entry point in the
``photobatch`` group naming a module of hookimpls.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from functools import cache
from typing import IO, Any, Protocol

import pluggy

from photobatch.core.records import PhotoRecord

hookspec = pluggy.HookspecMarker("photobatch")
hookimpl = pluggy.HookimplMarker("photobatch")

DEFAULT_PLUGINS = (
    "photobatch.plugins.xmp",
    "photobatch.plugins.json_sidecar",
    "photobatch.plugins.export",
)


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


class HookSpecs:
    @hookspec
    def photobatch_sidecar_writers(self) -> list[SidecarWriter]:
        """Return the sidecar writers this plugin provides."""

    @hookspec
    def photobatch_exporters(self) -> list[Exporter]:
        """Return the export formats this plugin provides."""


@cache
def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager: the first-party plugins, then every installed
    ``photobatch`` entry point."""
    pm = pluggy.PluginManager("photobatch")
    pm.add_hookspecs(HookSpecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name)
    pm.load_setuptools_entrypoints("photobatch")
    return pm


def sidecar_writers() -> dict[str, SidecarWriter]:
    """All installed sidecar writers by name."""
    hook = plugin_manager().hook.photobatch_sidecar_writers
    return {w.name: w for group in hook() for w in group}


def exporters() -> dict[str, Exporter]:
    """All installed exporters by format name."""
    hook = plugin_manager().hook.photobatch_exporters
    return {e.name: e for group in hook() for e in group}
