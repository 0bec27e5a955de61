"""GUI fixtures: a small main window under Xvfb (pytest-xvfb), with its settings in tmp_path."""

from __future__ import annotations

import atexit
import os
import sys

import pytest

import medviewer.ui  # noqa: F401  (guards against the PySide6 6.12 None-refcount bug, see there)

_exit_status = {"value": None, "gui_used": False}


def pytest_sessionfinish(session, exitstatus):
    _exit_status["value"] = int(exitstatus)


def _leave_before_xvfb_goes() -> None:
    """Qt-with-VTK processes exit with status 1 when pytest-xvfb stops Xvfb under them at exit
    ("XIO: fatal IO error", raised while C++ objects are torn down after the server is gone).
    So, once the session is over and the windows are closed: stop Xvfb ourselves and leave at
    once with pytest's own exit status."""
    if not _exit_status["gui_used"] or _exit_status["value"] is None:
        return
    try:
        import pytest_xvfb

        pytest_xvfb.shutdown_xvfb()
    except ImportError:
        pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status["value"])


atexit.register(_leave_before_xvfb_goes)  # registered after pytest-xvfb's handler: runs before it


@pytest.fixture
def window(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from medviewer.ui.main_window import MainWindow

    _exit_status["gui_used"] = True
    w = MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat), quiet=True)
    w.browser_dock.hide()
    w.layers_dock.hide()
    w.resize(700, 600)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    if w.task is not None:
        w.task.cancel()
        w.task.wait(10)
