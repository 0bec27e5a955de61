"""Errors that reach the user as one clear line naming the file and the problem."""

from __future__ import annotations

import os


class MedviewerError(Exception):
    """An error the user can act on: what went wrong, and with which file or folder."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.message = message
        self.path = os.fspath(path) if path is not None else None
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{printable(self.path)}: {self.message}" if self.path else self.message


def printable(text: str) -> str:
    """``text`` with control characters (a newline in a file name, a terminal escape) written as
    escapes, so that a message stays the one line it is meant to be."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
