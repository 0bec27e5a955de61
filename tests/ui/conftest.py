"""GUI fixtures: a small main window (under the Xvfb that tests/conftest.py starts), settings in tmp_path."""

from __future__ import annotations

import pytest



@pytest.fixture
def window(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from medviewer.ui.main_window import MainWindow

    w = MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat), quiet=True)
    w.browser_dock.hide()
    w.layers_dock.hide()
    w.segment_dock.hide()
    w.plugins_dock.hide()
    w.pacs_dock.hide()
    w.measurements_dock.hide()
    w.resize(700, 600)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    qtbot.waitUntil(lambda: not w._tab_groups)   # the side panels' tabs are made once it is shown
    yield w
    if w.task is not None:
        w.task.cancel()
        w.task.wait(10)
