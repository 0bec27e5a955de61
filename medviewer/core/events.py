"""A tiny Qt-free event emitter: ``connect(name, callback)`` and ``emit(name, *args)``.

The Document uses it so that the render layer and the UI can follow its changes without the core
knowing about Qt or VTK. Callbacks run synchronously, in the thread that emits (for the Document:
the GUI thread). A callback that raises does not stop the others; the first error is re-raised
after all have run.
"""

from __future__ import annotations

from typing import Any, Callable


class EventEmitter:
    """Named events with any number of listeners, called in the order they connected."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[Callable[..., Any]]] = {}

    def connect(self, name: str, callback: Callable[..., Any]) -> Callable[..., Any]:
        """Call ``callback(*args)`` on each ``emit(name, *args)``; returns the callback."""
        self._listeners.setdefault(name, []).append(callback)
        return callback

    def disconnect(self, name: str, callback: Callable[..., Any]) -> None:
        """Stop calling ``callback`` for ``name`` (no error if it was not connected)."""
        listeners = self._listeners.get(name, [])
        if callback in listeners:
            listeners.remove(callback)

    def connect_all(self, handlers) -> list:
        """Connect (name, callback) pairs; returns them for :meth:`disconnect_all`."""
        handlers = list(handlers)
        for name, callback in handlers:
            self.connect(name, callback)
        return handlers

    def disconnect_all(self, handlers) -> None:
        for name, callback in handlers:
            self.disconnect(name, callback)

    def emit(self, name: str, *args: Any) -> None:
        error: BaseException | None = None
        for callback in list(self._listeners.get(name, ())):
            try:
                callback(*args)
            except Exception as exc:  # keep notifying the others
                error = error or exc
        if error is not None:
            raise error

    def listener_count(self, name: str) -> int:
        return len(self._listeners.get(name, ()))
