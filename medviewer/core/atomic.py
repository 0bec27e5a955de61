"""Write a file so that it appears complete or not at all, with one clear message on failure."""

from __future__ import annotations

import errno
import os
import tempfile
from contextlib import contextmanager
from typing import Iterator

from medviewer.core.errors import MedviewerError


def os_error_message(exc: OSError) -> str:
    """A short reason for a failed write: disk full, permission denied, read-only, ..."""
    code = getattr(exc, "errno", None)
    if code == errno.ENOSPC:
        return "the disk is full"
    if code == errno.EDQUOT:
        return "the disk quota is exceeded"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if code == errno.EROFS:
        return "read-only file system"
    if code in (errno.ENOTDIR, errno.ENOENT):
        return "the folder does not exist"
    return exc.strerror or str(exc)


def check_target(path: str | os.PathLike, force: bool = False) -> str:
    """Refuse an existing target without ``force`` and a missing folder; return the path."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise MedviewerError("is a folder; give a file name", path)
    if os.path.lexists(path) and not force:
        raise MedviewerError("already exists (use --force to replace it)", path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise MedviewerError("cannot write: the folder does not exist", folder)
    return path


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike, force: bool = False, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    ``suffix`` ends the temporary name (writers that pick the format by suffix need it).
    Any failure (an exception in the block, a full disk, a permission error) removes the
    temporary file and raises MedviewerError naming ``path``; nothing is left behind.
    """
    path = check_target(path, force)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".part" + suffix, dir=folder)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; others expect the umask's mode
    except OSError as exc:
        raise MedviewerError(f"cannot write here ({os_error_message(exc)})", folder) from None
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        if os.path.lexists(path) and not force:  # appeared while we were writing
            raise MedviewerError("already exists (use --force to replace it)", path)
        os.replace(tmp, path)
    except MedviewerError:
        _remove(tmp)
        raise
    except OSError as exc:
        _remove(tmp)
        raise MedviewerError(f"could not be written ({os_error_message(exc)}); nothing was written",
                             path) from None
    except BaseException:
        _remove(tmp)
        raise


def _remove(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass


def write_bytes(path: str | os.PathLike, data: bytes, force: bool = False) -> str:
    with atomic_path(path, force) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return os.fspath(path)


def write_text(path: str | os.PathLike, text: str, force: bool = False) -> str:
    return write_bytes(path, text.encode("utf-8"), force)


def write_dataset(path: str | os.PathLike, dataset, force: bool = False) -> str:
    """Save a pydicom Dataset atomically (as a DICOM Part 10 file)."""
    with atomic_path(path, force) as tmp:
        try:
            dataset.save_as(tmp, enforce_file_format=True)
        except OSError:
            raise
        except Exception as exc:  # pydicom raises ValueError etc. for an unwritable dataset
            raise MedviewerError(f"could not be encoded as DICOM ({type(exc).__name__}: {exc})",
                                 path) from None
    return os.fspath(path)
