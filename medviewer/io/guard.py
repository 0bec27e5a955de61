"""The one guard every file the loaders read passes through.

pydicom decodes values lazily: a damaged element (an unknown VR, a length past the end, a number
that is not one) raises when it is first *used*, which may be long after ``dcmread`` returned and
far from any try block. Decoders (GDCM, OpenJPEG, ITK's NIfTI/NRRD readers) raise their own kinds.
So each reader does all of its work on one file -- open, parse, force the decoding of every value
it uses, decode pixels -- inside :func:`guarded`, which turns whatever escapes into a
:class:`MedviewerError` naming the file with a one-line reason. Callers then skip the file and
report it, or refuse the load naming it; no exception type from below ever reaches a user.

Only regular files are opened (:func:`open_regular`): a named pipe would block ``open`` forever,
a device could be read without end, a symbolic-link loop or a directory named ``x.dcm`` is not a
file at all. These are refused from ``os.stat`` before anything is opened.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import stat
from typing import Iterator

from medviewer.core.errors import MedviewerError

# Longest reason kept from a decoder's own message (some quote whole byte strings).
_REASON_CHARS = 160

_SPECIAL_KINDS = (
    (stat.S_ISDIR, "a folder, not a file"),
    (stat.S_ISFIFO, "a named pipe (FIFO), not a regular file: not opened"),
    (stat.S_ISSOCK, "a socket, not a regular file: not opened"),
    (stat.S_ISCHR, "a character device, not a regular file: not opened"),
    (stat.S_ISBLK, "a block device, not a regular file: not opened"),
)


def one_line(text: object, limit: int = _REASON_CHARS) -> str:
    """``text`` on one line (the last non-empty line of a multi-line message), at most ``limit``
    characters: what a decoder said, fit for a one-line error."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    line = lines[-1] if lines else ""
    line = "".join(ch if ch.isprintable() else "?" for ch in line)
    return line if len(line) <= limit else line[: limit - 3] + "..."


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` on one line."""
    text = one_line(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check_regular(path: str) -> os.stat_result:
    """``os.stat(path)`` of a regular file; MedviewerError naming ``path`` for anything else
    (nothing is opened)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise MedviewerError("unreadable (symbolic link loop)", path) from None
        if exc.errno == errno.ENOENT and os.path.islink(path):
            raise MedviewerError("unreadable (broken symbolic link)", path) from None
        if isinstance(exc, PermissionError):
            raise MedviewerError("permission denied", path) from None
        raise MedviewerError(f"unreadable ({exc.strerror or exc})", path) from None
    for test, reason in _SPECIAL_KINDS:
        if test(st.st_mode):
            raise MedviewerError(reason, path)
    if not stat.S_ISREG(st.st_mode):
        raise MedviewerError("not a regular file: not opened", path)
    return st


def open_regular(path: str) -> "BoundedReader":
    """Open ``path`` for binary reading if, and only if, it is a regular file.

    Checked with ``os.stat`` first; then opened non-blocking (so that a file swapped for a pipe in
    between still cannot block) and checked again on the open descriptor.
    """
    check_regular(path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise MedviewerError("not a regular file: not opened", path)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return BoundedReader(os.fdopen(fd, "rb"))
    except BaseException:
        os.close(fd)
        raise


class BoundedReader:
    """A binary file whose ``read(n)`` never asks for more than the bytes left in the file.

    A damaged length field (a few gigabytes) makes a parser call ``read(length)``; Python
    allocates the whole buffer before it finds the file short. Capped, a lie costs nothing."""

    # Reads up to this size go straight through: they cannot allocate much, and a parser makes
    # thousands of them.
    _SMALL = 1 << 20

    def __init__(self, raw) -> None:
        self._raw = raw
        self._size = os.fstat(raw.fileno()).st_size
        self.tell, self.seek = raw.tell, raw.seek  # called often: no __getattr__ on the way

    def read(self, size: int = -1) -> bytes:
        if size is not None and 0 <= size <= self._SMALL:
            return self._raw.read(size)
        left = max(self._size - self._raw.tell(), 0)
        return self._raw.read(left if size is None or size < 0 else min(size, left))

    def readinto(self, buffer) -> int:
        return self._raw.readinto(buffer)

    def __getattr__(self, name):
        return getattr(self._raw, name)

    def __enter__(self) -> "BoundedReader":
        return self

    def __exit__(self, *exc) -> None:
        self._raw.close()


@contextlib.contextmanager
def guarded(path: str | os.PathLike, what: str = "DICOM file") -> Iterator[None]:
    """Run the body's reading of ``path``; any error becomes a MedviewerError naming ``path``.

    ``what`` names the kind of file in the reason ("damaged DICOM file (ValueError: ...)").
    A MedviewerError raised inside keeps its message but is made to name ``path`` if it named
    nothing. KeyboardInterrupt and SystemExit pass through.
    """
    path = os.fspath(path)
    try:
        yield
    except MedviewerError as exc:
        if exc.path is None:
            raise MedviewerError(exc.message, path) from None
        raise
    except MemoryError:
        raise MedviewerError(f"too large to read: {what} needs more memory than there is", path) from None
    except RecursionError:
        raise MedviewerError(f"damaged {what} (nested too deeply)", path) from None
    except PermissionError:
        raise MedviewerError("permission denied", path) from None
    except OSError as exc:
        if exc.errno is not None:
            raise MedviewerError(f"unreadable ({exc.strerror or exc})", path) from None
        raise MedviewerError(f"damaged {what} ({describe_exception(exc)})", path) from None
    except Exception as exc:  # noqa: BLE001  (the point of the guard: pydicom, GDCM, ITK raise many kinds)
        raise MedviewerError(f"damaged {what} ({describe_exception(exc)})", path) from None


def read_dataset(path: str, **kwargs):
    """``pydicom.dcmread`` of a regular file, through :class:`BoundedReader`."""
    import pydicom

    with open_regular(path) as fp:
        return pydicom.dcmread(fp, **kwargs)


def reads_file(what: str):
    """Decorator for a reader whose first argument is a file path: the whole call runs inside
    :func:`guarded`, after :func:`check_regular`."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(path, *args, **kwargs):
            with guarded(path, what):
                check_regular(os.fspath(path))
                return fn(path, *args, **kwargs)
        return wrapper

    return decorate
