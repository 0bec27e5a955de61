"""The Qt user interface (PySide6). Only this package imports Qt.

Importing it applies :func:`guard_none_refcount` (see there).
"""

from __future__ import annotations

import sys


def guard_none_refcount() -> None:
    """Work around PySide6 6.12 on Python 3.11: every Qt method returning void hands back ``None``
    without a new reference (harmless from Python 3.12 on, where None is immortal). On 3.11 each
    such call (``processEvents()``, ``setText()``, ...) drains one reference, and after a few
    thousand calls the interpreter aborts with "none_dealloc: deallocating None". Give None a
    practically endless reference count, as Python 3.12 does. A no-op on Python >= 3.12.
    """
    if sys.version_info >= (3, 12) or getattr(guard_none_refcount, "done", False):
        return
    import ctypes

    ctypes.c_ssize_t.from_address(id(None)).value += 1 << 40  # ob_refcnt is the first field
    guard_none_refcount.done = True


guard_none_refcount()
