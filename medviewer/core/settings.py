"""The user's settings: one small JSON file, read and written whole (atomically).

Where: ``$MEDVIEWER_CONFIG`` (the file) if set (tests point it at a temporary file), else
``$MEDVIEWER_CONFIG_DIR/settings.json`` if that is set, else
``$XDG_CONFIG_HOME/medviewer/settings.json`` (``~/.config/medviewer/settings.json``).
Keys this version does not know are kept as they are and written back, so that older and newer
versions (and other parts of the program) can share the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from medviewer.core.atomic import os_error_message, write_text
from medviewer.core.errors import MedviewerError

DEFAULT_AE_TITLE = "MEDVIEWER"


def settings_path() -> str:
    env = os.environ.get("MEDVIEWER_CONFIG")
    if env:
        return env
    folder = os.environ.get("MEDVIEWER_CONFIG_DIR")
    if folder:
        return os.path.join(folder, "settings.json")
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "medviewer", "settings.json")


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "medviewer")


@dataclass
class Settings:
    """Typed view of settings.json. ``servers`` maps a name to a server URL
    (``http(s)://host:port/dicom-web`` or ``dicom://AET@host:port``)."""

    servers: dict[str, str] = field(default_factory=dict)
    ae_title: str = DEFAULT_AE_TITLE  # our own DICOM AE title (DIMSE)
    cache_dir: str = ""  # empty: default_cache_dir()
    move_port: int = 0  # DIMSE retrieval: 0 = C-GET; a port = C-MOVE to us, listening there
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know
    path: str = ""  # where it was read from / is written to

    _KNOWN = ("servers", "ae_title", "cache_dir", "move_port")

    @property
    def cache_folder(self) -> str:
        return os.path.expanduser(self.cache_dir) if self.cache_dir else default_cache_dir()

    def to_json(self) -> dict[str, Any]:
        data = dict(self.extra)
        data.update(servers=dict(sorted(self.servers.items())), ae_title=self.ae_title,
                    cache_dir=self.cache_dir, move_port=self.move_port)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], path: str = "") -> "Settings":
        if not isinstance(data, dict):
            raise MedviewerError("settings file does not hold a JSON object", path or None)
        servers = data.get("servers", {}) or {}
        if not isinstance(servers, dict) or not all(isinstance(v, str) for v in servers.values()):
            raise MedviewerError('"servers" must map names to URLs', path or None)
        ae = data.get("ae_title", DEFAULT_AE_TITLE) or DEFAULT_AE_TITLE
        cache = data.get("cache_dir", "") or ""
        if not isinstance(ae, str) or not isinstance(cache, str):
            raise MedviewerError('"ae_title" and "cache_dir" must be strings', path or None)
        move_port = data.get("move_port", 0) or 0
        if not isinstance(move_port, int) or not 0 <= move_port < 65536:
            raise MedviewerError('"move_port" must be a port number (0: retrieve with C-GET)', path or None)
        extra = {k: v for k, v in data.items() if k not in cls._KNOWN}
        return cls(servers=dict(servers), ae_title=ae, cache_dir=cache, move_port=move_port, extra=extra,
                   path=path)


def load_settings(path: str | os.PathLike | None = None) -> Settings:
    """The settings at ``path`` (default: settings_path()); defaults when the file does not exist."""
    path = os.fspath(path) if path is not None else settings_path()
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return Settings(path=path)
    except json.JSONDecodeError as exc:
        raise MedviewerError(f"settings file is not valid JSON (line {exc.lineno}: {exc.msg})", path) from None
    except OSError as exc:
        raise MedviewerError(f"settings file cannot be read ({exc.strerror or exc})", path) from None
    return Settings.from_json(data, path)


def save_settings(settings: Settings, path: str | os.PathLike | None = None) -> str:
    """Write ``settings`` (to ``path``, else where they were read from, else settings_path())
    atomically: a temporary file beside it, then a rename. Returns the path."""
    path = os.fspath(path) if path is not None else (settings.path or settings_path())
    folder = os.path.dirname(os.path.abspath(path))
    text = json.dumps(settings.to_json(), indent=2, sort_keys=False) + "\n"
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise MedviewerError(f"settings could not be saved ({os_error_message(exc)})", folder) from None
    try:
        write_text(path, text, force=True)
    except MedviewerError as exc:
        raise MedviewerError(f"settings could not be saved ({exc.message})", path) from None
    settings.path = path
    return path
