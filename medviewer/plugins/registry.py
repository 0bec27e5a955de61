"""Finding plugins without importing them.

Two sources, both static:

* the ``medviewer.plugins`` entry-point group: each entry point names a :class:`Manifest` object
  (``"medviewer_plugins.denoise:MANIFEST"``); the module holding it must be light (no torch at its top);
* user plugin folders: ``MEDVIEWER_PLUGIN_PATH`` (folders separated by ``os.pathsep``), else
  ``~/.medviewer/plugins``. Each sub-folder holding a ``plugin.json`` manifest is one plugin;
  its ``entry`` (``"module:Class"``) is imported from that sub-folder when it runs.

The implementation (``Manifest.entry``) is imported only by :func:`load_plugin`.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from dataclasses import dataclass, replace
from importlib.metadata import entry_points

from medviewer.plugins.api import Availability, Manifest, Plugin, PluginError, modules_available

ENTRY_POINT_GROUP = "medviewer.plugins"
MANIFEST_FILE = "plugin.json"


@dataclass(frozen=True)
class DiscoveryProblem:
    source: str
    message: str


def user_plugin_folders() -> list[str]:
    env = os.environ.get("MEDVIEWER_PLUGIN_PATH")
    if env is not None:
        return [p for p in env.split(os.pathsep) if p]
    return [os.path.join(os.path.expanduser("~"), ".medviewer", "plugins")]


def _from_entry_points(found: dict[str, Manifest], problems: list[DiscoveryProblem]) -> None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            manifest = ep.load()
            if callable(manifest) and not isinstance(manifest, Manifest):
                manifest = manifest()
            if not isinstance(manifest, Manifest):
                raise PluginError(f"entry point {ep.value} is not a medviewer Manifest")
        except Exception as exc:  # a broken plugin must not hide the others
            problems.append(DiscoveryProblem(f"entry point {ep.name} ({ep.value})", f"{type(exc).__name__}: {exc}"))
            continue
        if manifest.id in found:
            continue  # the same plugin installed twice (editable and regular): first wins
        found[manifest.id] = manifest


def _from_folders(found: dict[str, Manifest], problems: list[DiscoveryProblem]) -> None:
    for root in user_plugin_folders():
        if not os.path.isdir(root):
            continue
        for name in sorted(os.listdir(root)):
            folder = os.path.join(root, name)
            path = os.path.join(folder, MANIFEST_FILE)
            if not os.path.isfile(path):
                continue
            try:
                with open(path, encoding="utf-8") as fh:
                    data = json.load(fh)
                manifest = Manifest.from_dict(data, search_path=os.path.abspath(folder))
            except Exception as exc:
                problems.append(DiscoveryProblem(path, f"{type(exc).__name__}: {exc}"))
                continue
            if manifest.id in found:
                problems.append(DiscoveryProblem(path, f"plugin id {manifest.id!r} is already taken; ignored"))
                continue
            found[manifest.id] = manifest


def discover(*, user_folders: bool = True) -> tuple[dict[str, Manifest], list[DiscoveryProblem]]:
    """All plugin manifests by id, and the problems met (never raises for one bad plugin)."""
    found: dict[str, Manifest] = {}
    problems: list[DiscoveryProblem] = []
    _from_entry_points(found, problems)
    if user_folders:
        _from_folders(found, problems)
    return found, problems


def get_manifest(plugin_id: str) -> Manifest:
    found, problems = discover()
    if plugin_id not in found:
        known = ", ".join(sorted(found)) or "none"
        hint = ""
        if not found:
            hint = " (is medviewer installed? entry points need `pip install -e .`)"
        raise PluginError(f"no plugin {plugin_id!r} (installed: {known}){hint}")
    return found[plugin_id]


def static_availability(manifest: Manifest) -> Availability:
    """Availability from the manifest alone: nothing is imported."""
    return modules_available(manifest.requires)


def load_plugin(manifest: Manifest) -> Plugin:
    """Import the implementation named by ``manifest.entry`` and make one instance."""
    module_name, _, attr = manifest.entry.partition(":")
    if manifest.search_path and manifest.search_path not in sys.path:
        sys.path.insert(0, manifest.search_path)
    try:
        module = importlib.import_module(module_name)
        cls = module
        for part in attr.split("."):
            cls = getattr(cls, part)
    except Exception as exc:
        raise PluginError(f"plugin {manifest.id}: cannot import {manifest.entry} ({type(exc).__name__}: {exc})") from exc
    plugin = cls()
    if not isinstance(plugin, Plugin):
        raise PluginError(f"plugin {manifest.id}: {manifest.entry} is not a medviewer Plugin")
    # The static manifest is the authority (a folder plugin's search_path lives only there).
    plugin.manifest = replace(manifest)
    return plugin
