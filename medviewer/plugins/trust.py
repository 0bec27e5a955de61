"""Folders the user trusts to run code from (MONAI bundles execute their configs' expressions).

The list lives in ``settings.json`` in the medviewer settings folder (``MEDVIEWER_CONFIG_DIR``,
default ``~/.medviewer``) under ``"trusted_plugin_folders"``. Written atomically.
"""

from __future__ import annotations

import json
import os
import tempfile

from medviewer.core.errors import MedviewerError

KEY = "trusted_plugin_folders"


def settings_path() -> str:
    root = os.environ.get("MEDVIEWER_CONFIG_DIR") or os.path.join(os.path.expanduser("~"), ".medviewer")
    return os.path.join(root, "settings.json")


def _read() -> dict:
    path = settings_path()
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise MedviewerError(f"cannot read the settings ({exc})", path) from None
    return data if isinstance(data, dict) else {}


def _canonical(folder: str | os.PathLike) -> str:
    return os.path.realpath(os.path.abspath(os.path.expanduser(os.fspath(folder))))


def trusted_folders() -> list[str]:
    return [str(f) for f in _read().get(KEY, [])]


def is_trusted(folder: str | os.PathLike) -> bool:
    return _canonical(folder) in trusted_folders()


def set_trusted(folder: str | os.PathLike, trusted: bool = True) -> str:
    """Add (or remove) ``folder`` to the trust list; returns the canonical path stored."""
    folder = _canonical(folder)
    data = _read()
    folders = [f for f in data.get(KEY, []) if f != folder]
    if trusted:
        folders.append(folder)
    data[KEY] = folders
    path = settings_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".json", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return folder


def untrusted_message(folder: str | os.PathLike) -> str:
    folder = _canonical(folder)
    return (f"the bundle folder {folder} is not trusted: a MONAI bundle runs the code in its configs. "
            f"If you trust its source, run again with --trust (or `medviewer plugins --trust {folder}`, "
            f"or tick 'Trust this folder' in the plugin panel)")
