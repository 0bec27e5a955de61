"""Background work for the GUI: run a function in a worker thread, hear about it on the GUI thread.

The worker never touches Qt widgets or VTK: it reports through Qt signals, which Qt queues to the
GUI thread because the receiving objects live there.
"""

from __future__ import annotations

import threading
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal

from medviewer.core.errors import MedviewerError


class Cancelled(Exception):
    """Raised inside a task's function when its ``cancelled()`` callback turned true."""


class Task(QObject):
    """``fn(progress, cancelled)`` run in a daemon thread.

    Signals (delivered on the GUI thread): ``progress(float 0..1)``, ``finished(result)``,
    ``failed(message)``, ``was_cancelled()``; exactly one of the last three is emitted, then ``ended()``.
    """

    progress = Signal(float)
    finished = Signal(object)
    failed = Signal(str)
    was_cancelled = Signal()
    ended = Signal()

    def __init__(self, fn: Callable[[Callable[[float], None], Callable[[], bool]], Any],
                 label: str = "", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.fn = fn
        self.label = label
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self.running = False

    def start(self) -> "Task":
        self.running = True
        self._thread = threading.Thread(target=self._run, name=f"medviewer-task-{self.label}", daemon=True)
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the task to stop; it ends with ``was_cancelled`` at its next progress check."""
        self._cancel.set()

    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the worker thread ends (for tests and shutdown); True if it ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            result = self.fn(self.progress.emit, self._cancel.is_set)
            if self._cancel.is_set():
                self.was_cancelled.emit()
            else:
                self.finished.emit(result)
        except (Cancelled,) :
            self.was_cancelled.emit()
        except MedviewerError as exc:
            if self._cancel.is_set():
                self.was_cancelled.emit()
            else:
                self.failed.emit(str(exc))
        except Exception as exc:  # reported to the user as one line
            traceback.print_exc()
            self.failed.emit(f"unexpected error: {type(exc).__name__}: {exc}")
        finally:
            self.running = False
            self.ended.emit()
