"""The Help menu: its shortcut table is read from the menus (every shortcut listed, none made up),
and About names the versions and the learned engine's bundle."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QDialog, QTextBrowser

from medviewer import __version__
from medviewer.ui.help_menu import menu_shortcuts

pytestmark = [pytest.mark.gui, pytest.mark.timeout(60)]


def _all_actions(menu):
    for action in menu.actions():
        if action.menu() is not None:
            yield from _all_actions(action.menu())
        elif not action.isSeparator():
            yield action


def test_f1_lists_the_mouse_and_every_menu_shortcut(window):
    menus = [a.menu() for a in window.menuBar().actions() if a.menu() is not None]
    assert [m.title() for m in menus][-1] == "&Help"
    with_keys = [a for m in menus for a in _all_actions(m) if a.shortcuts()]
    rows = menu_shortcuts(window)
    assert len(rows) == len(with_keys) >= 15
    found = {(menu, action): keys for menu, action, keys in rows}
    assert found[("Measure", "Ellipse ROI")] == QKeySequence("Ctrl+E").toString(QKeySequence.NativeText)
    assert found[("Segment", "Click segment")] == "1"
    assert "Ctrl+Shift+Z" in found[("Edit", "Redo")].replace("\u2191", "Shift")
    (keys_action,) = [a for a in with_keys if a.text() == "&Mouse and keyboard"]
    keys_action.trigger()
    dialog = window.findChild(QDialog, "help-keys")
    assert dialog is not None and dialog.isVisible()
    text = dialog.findChild(QTextBrowser).toPlainText()
    for menu, action, keys in rows:
        assert action in text and keys in text
    assert "Window (left-right) and level (up-down)" in text and "Rotate" in text
    keys_action.trigger()   # again: the same dialog, not a second one
    assert len(window.findChildren(QDialog, "help-keys")) == 1


def test_about_names_the_versions_and_the_learned_engines_bundle(window):
    (about,) = [a for a in _all_actions(window.menuBar().actions()[-1].menu()) if "About" in a.text()]
    about.trigger()
    text = window.findChild(QDialog, "help-about").findChild(QTextBrowser).toPlainText()
    assert f"medviewer {__version__}" in text and "Not for diagnosis" in text
    assert "version 0." in text and "click_segment_bundle" in text and "README.md" in text
    assert "VTK" in text and "MONAI" in text and "PySide6 6." in text
