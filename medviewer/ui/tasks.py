"""Background work for the GUI: run a function in a worker thread, hear about it on the GUI thread
(:class:`Task`); hear a plugin runner job's events on the GUI thread (:class:`JobPoller`).

The worker thread never calls Qt (nor VTK): it only stores its progress and its outcome in plain
Python attributes. A QTimer on the GUI thread polls them and emits the Task's signals there.
(Emitting Qt signals straight from inside SimpleITK's progress callback crashes PySide6 with a
refcount error, "deallocating None"; polling keeps Qt out of the worker entirely.)
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, Qt, QTimer, Signal

from medviewer.core.errors import MedviewerError
from medviewer.plugins.runner import TERMINAL

POLL_MS = 25


class Task(QObject):
    """``fn(progress, cancelled)`` run in a daemon thread.

    ``progress(fraction)`` and ``cancelled() -> bool`` are safe to call from the worker. Signals,
    all delivered on the GUI thread: ``progress(float 0..1)``; then exactly one of
    ``finished(result)``, ``failed(message)``, ``was_cancelled()``; then ``ended()``.
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
        self._fraction: float | None = None
        self._reported: float | None = None
        self._outcome: tuple[str, Any] | None = None   # written once by the worker
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)
        self.running = False

    def start(self) -> "Task":
        self.running = True
        self._thread = threading.Thread(target=self._run, name=f"medviewer-task-{self.label}", daemon=True)
        self._thread.start()
        self._timer.start()
        return self

    def cancel(self) -> None:
        """Ask the task to stop; it ends with ``was_cancelled`` at its next progress check."""
        self._cancel.set()

    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the worker thread ends (for tests and shutdown); True if it ended.
        The signals still come from the event loop afterwards."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ---- worker thread -----------------------------------------------------------------------
    def _set_progress(self, fraction: float) -> None:
        self._fraction = float(fraction)

    def _run(self) -> None:
        try:
            result = self.fn(self._set_progress, self._cancel.is_set)
            outcome = ("cancelled", None) if self._cancel.is_set() else ("finished", result)
        except MedviewerError as exc:
            outcome = ("cancelled", None) if self._cancel.is_set() else ("failed", str(exc))
        except Exception as exc:  # reported to the user as one line
            traceback.print_exc()
            outcome = ("failed", f"unexpected error: {type(exc).__name__}: {exc}")
        self._outcome = outcome

    # ---- GUI thread --------------------------------------------------------------------------
    def _poll(self) -> None:
        fraction = self._fraction
        if fraction is not None and fraction != self._reported:
            self._reported = fraction
            self.progress.emit(fraction)
        outcome = self._outcome
        if outcome is None:
            return
        self._timer.stop()
        self.running = False
        kind, value = outcome
        if kind == "finished":
            self.finished.emit(value)
        elif kind == "failed":
            self.failed.emit(value)
        else:
            self.was_cancelled.emit()
        self.ended.emit()


class JobPoller(QObject):
    """Hear a plugin runner :class:`~medviewer.plugins.runner.Job`'s events on the GUI thread.

    The runner's threads never touch Qt: they put events into ``job.events`` (a ``queue.Queue``),
    and a QTimer here drains it, calling ``on_event(event)`` for each, in order. Polling stops by
    itself before the job's last event (returned, errored or aborted) is handed on, so
    ``on_event`` may :meth:`watch` a new job from there; :meth:`stop` forgets the job (its later
    events are not read).
    """

    def __init__(self, on_event: Callable[[Any], None], parent: QObject | None = None,
                 interval_ms: int = POLL_MS) -> None:
        super().__init__(parent)
        self.on_event = on_event
        self.job = None
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.poll)

    def watch(self, job) -> None:
        self.job = job
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        self.job = None

    @property
    def active(self) -> bool:
        return self._timer.isActive()

    def poll(self) -> None:
        """Hand on the events that have arrived (the timer calls this; tests may too)."""
        job = self.job
        while job is not None and self.job is job:
            try:
                event = job.events.get_nowait()
            except queue.Empty:
                return
            if event.kind in TERMINAL:
                self.stop()
            self.on_event(event)
        if self.job is None:
            self._timer.stop()


class FreezeMeter(QObject):
    """How long the GUI thread stopped turning its event loop: a QTimer ticking every
    ``interval_ms``; the longest gap between two ticks is the longest freeze.

    ``longest_ticks``: that gap in ticks (1 when no tick was missed), what the tests assert on;
    ``longest_ms`` the same in milliseconds, what the benchmarks report."""

    def __init__(self, interval_ms: int = 10, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.interval_ms = interval_ms
        self.longest_ms = 0.0
        self.ticks = 0
        self._last: float | None = None
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)

    def start(self) -> "FreezeMeter":
        self.longest_ms, self.ticks, self._last = 0.0, 0, time.perf_counter()
        self._timer.start()
        return self

    def stop(self) -> "FreezeMeter":
        self._tick()
        self._timer.stop()
        return self

    @property
    def longest_ticks(self) -> float:
        return self.longest_ms / self.interval_ms

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.longest_ms = max(self.longest_ms, 1000.0 * (now - self._last))
        self._last = now
        self.ticks += 1
