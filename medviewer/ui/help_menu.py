"""The Help menu: Mouse and keyboard (F1), a reference of what the mouse does in each view and of
every menu shortcut (read from the menus themselves, so it cannot drift from them), and About
medviewer (versions, and the learned engine's model and where its model card is).
"""

from __future__ import annotations

import html
import json
import os
import platform
from importlib import metadata

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout

#: (where, what the user does, what happens) - the 2D views (SliceView), the 3D view (VolumeView)
MOUSE = (
    ("2D views", "Left click or drag", "Move the crosshair (all views follow)"),
    ("2D views", "Wheel; Up/Down, PgUp/PgDn, Left/Right (with Shift: 10)", "Scroll through the slices"),
    ("2D views", "Shift+right drag or Alt+left drag", "Scroll through the slices"),
    ("2D views", "Right drag", "Window (left-right) and level (up-down)"),
    ("2D views", "Middle drag or Shift+left drag", "Pan"),
    ("2D views", "Ctrl+wheel, Ctrl+left or right drag", "Zoom"),
    ("2D views", "R", "Reset the view"),
    ("2D views, Click segment tool", "Left click / Shift+left click", "Positive / negative point on the lesion"),
    ("2D views, Brush, Eraser, Threshold brush", "Left drag", "Paint or erase a disc of the brush radius"),
    ("2D views, Scissors", "Left drag", "Draw an outline; on release, cut the segment with it"),
    ("2D views, Length", "Left drag; drag an end", "Draw a ruler; move that end"),
    ("2D views, Bidirectional", "Left drag; drag an end",
     "Draw the long axis (a short axis crosses it); move that end, the axes staying perpendicular"),
    ("2D views, Ellipse ROI", "Left drag; drag an axis' end; drag inside",
     "Draw an ellipse corner to corner; resize that axis; move it"),
    ("2D views, Length, Bidirectional, Ellipse ROI", "Delete or Backspace",
     "Remove the measurement last drawn or moved"),
    ("3D view", "Left drag", "Rotate"),
    ("3D view", "Middle drag or Shift+left drag", "Pan"),
    ("3D view", "Right drag or wheel", "Zoom"),
    ("3D view", "R", "Reset the view"),
)


def _plain(text: str) -> str:
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&")


def menu_shortcuts(window) -> list[tuple[str, str, str]]:
    """(menu path, action, shortcuts) of every action in the window's menus that has a shortcut,
    in menu order."""
    rows = []

    def walk(menu, path):
        for action in menu.actions():
            if action.menu() is not None:
                walk(action.menu(), path + [_plain(action.text())])
            elif not action.isSeparator() and action.shortcuts():
                keys = ", ".join(k.toString(QKeySequence.NativeText) for k in action.shortcuts())
                rows.append((" > ".join(path), _plain(action.text()), keys))

    for top in window.menuBar().actions():
        if top.menu() is not None:
            walk(top.menu(), [_plain(top.text())])
    return rows


def _table(header, rows) -> str:
    head = "".join(f"<th align='left'>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table cellspacing='0' cellpadding='3'><tr>{head}</tr>{body}</table>"


def mouse_and_keyboard_html(window) -> str:
    return ("<h3>Mouse</h3>" + _table(("Where", "Do", "To"), MOUSE)
            + "<h3>Menu shortcuts</h3>" + _table(("Menu", "Action", "Keys"), menu_shortcuts(window)))


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def about_html() -> str:
    """Versions, and the learned engine's bundle (read from its metadata, not loaded)."""
    from medviewer import __version__
    from medviewer.core.resources import resource_path

    import PySide6
    from PySide6.QtCore import qVersion

    rows = [("medviewer", __version__), ("Python", platform.python_version()),
            ("Qt", f"{qVersion()} (PySide6 {PySide6.__version__})")]
    rows += [(name, _version(package)) for name, package in (
        ("VTK", "vtk"), ("pydicom", "pydicom"), ("highdicom", "highdicom"),
        ("SimpleITK", "SimpleITK"), ("MONAI", "monai"), ("PyTorch", "torch"))]
    folder = resource_path("click_segment_bundle")
    try:
        with open(folder / "configs" / "metadata.json", encoding="utf-8") as fh:
            meta = json.load(fh)
        bundle = (f"<p>Click-to-segment, learned engine: <b>{html.escape(str(meta.get('name', '')))}</b>, "
                  f"version {html.escape(str(meta.get('version', '?')))}. Its model card (data, training, "
                  "accuracy on held-out cases) is <code>"
                  f"{html.escape(os.fspath(folder / 'docs' / 'README.md'))}</code>. Check each outline and "
                  "correct it: a click gives a first outline, not an expert's.</p>")
    except (OSError, ValueError):
        bundle = (f"<p>The learned click-to-segment engine is not installed (no <code>{html.escape(os.fspath(folder))}"
                  "</code>); the classical engine is used.</p>")
    return (f"<h3>medviewer {html.escape(__version__)}</h3>"
            "<p>A CT viewer with click-to-segment, lesion measures and DICOM SEG, RTSTRUCT and SR export. "
            "<b>Not for diagnosis.</b></p>" + bundle + _table(("Component", "Version"), rows))


def _show(window, title: str, body: str, name: str) -> QDialog:
    dialog = window.findChild(QDialog, name)
    if dialog is None:
        dialog = QDialog(window)
        dialog.setObjectName(name)
        dialog.setWindowTitle(title)
        layout = QVBoxLayout(dialog)
        browser = QTextBrowser(dialog)
        browser.setOpenExternalLinks(False)
        layout.addWidget(browser)
        buttons = QDialogButtonBox(QDialogButtonBox.Close, dialog)
        buttons.rejected.connect(dialog.close)
        layout.addWidget(buttons)
        dialog.resize(720, 560)
    dialog.findChild(QTextBrowser).setHtml(body)
    dialog.show()
    dialog.raise_()
    return dialog


def install(window) -> None:
    """The Help menu, last in the menu bar."""
    menu = window.menuBar().addMenu("&Help")
    keys = QAction("&Mouse and keyboard", window)
    keys.setShortcut(QKeySequence.HelpContents)
    keys.triggered.connect(lambda _=False: _show(window, "medviewer: mouse and keyboard",
                                                 mouse_and_keyboard_html(window), "help-keys"))
    menu.addAction(keys)
    about = QAction("&About medviewer", window)
    about.triggered.connect(lambda _=False: _show(window, "About medviewer", about_html(), "help-about"))
    menu.addAction(about)
