"""Folders the user trusts to run code from (MONAI bundles execute their configs' expressions).

The list is the ``"trusted_plugin_folders"`` key of the user's settings file
(:mod:`medviewer.core.settings`, which keeps keys it does not know), written atomically.
"""

from __future__ import annotations

import os

from medviewer.core.errors import MedviewerError
from medviewer.core.settings import load_settings, save_settings, settings_path

KEY = "trusted_plugin_folders"

__all__ = ["KEY", "trusted_folders", "is_trusted", "set_trusted", "untrusted_message", "settings_path"]


def _canonical(folder: str | os.PathLike) -> str:
    return os.path.realpath(os.path.abspath(os.path.expanduser(os.fspath(folder))))


def trusted_folders() -> list[str]:
    value = load_settings().extra.get(KEY, [])
    return [str(f) for f in value] if isinstance(value, list) else []


def is_trusted(folder: str | os.PathLike) -> bool:
    return _canonical(folder) in trusted_folders()


def set_trusted(folder: str | os.PathLike, trusted: bool = True) -> str:
    """Add (or remove) ``folder`` to the trust list; returns the canonical path stored."""
    folder = _canonical(folder)
    settings = load_settings()
    folders = [f for f in trusted_folders() if f != folder]
    if trusted:
        folders.append(folder)
    settings.extra[KEY] = folders
    save_settings(settings)
    return folder


def untrusted_message(folder: str | os.PathLike) -> str:
    folder = _canonical(folder)
    return (f"the bundle folder {folder} is not trusted: a MONAI bundle runs the code in its configs. "
            f"If you trust its source, run again with --trust (or `medviewer plugins --trust {folder}`, "
            f"or tick 'Trust this folder' in the plugin panel)")


def require_trusted(manifest, params, *, trust_now: bool = False) -> str | None:
    """For a plugin that runs code from a folder (``params["bundle"]``): trust it now when asked
    (returns the line to tell the user), else refuse an untrusted folder with how to trust it."""
    if not manifest.executes_untrusted_code:
        return None
    folder = params.get("bundle")
    if folder and trust_now:
        return f"Trusting {set_trusted(folder, True)} (remembered in {settings_path()})"
    if folder and os.path.isdir(folder) and not is_trusted(folder):
        raise MedviewerError(untrusted_message(folder))
    return None
