"""Starting the GUI: the QApplication, the main window, and the screenshot-and-exit mode."""

from __future__ import annotations

import os
import sys

from medviewer.core.errors import MedviewerError


def display_available() -> bool:
    """False on Linux without an X11/Wayland display (and no explicit Qt platform)."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                or os.environ.get("QT_QPA_PLATFORM"))


def keep_triton_out() -> None:
    """Hide triton (torch's kernel compiler) from the window's process, before torch is imported.

    triton's library carries its own LLVM. Loaded after VTK has made an OpenGL context on Mesa
    (llvmpipe, which links the system's LLVM: software rendering, VMs, remote desktops, Xvfb), it
    crashes the process with a segmentation fault. torch imports it as soon as anything imports
    ``torch._dynamo`` (torchvision, MONAI), which the learned click engine does on the first
    click, in the window's process. The viewer never compiles kernels (no ``torch.compile``), and
    torch runs eagerly without triton on CPU and CUDA alike, so it does without. Plugins in a
    child process are not affected. Once triton is loaded (not in the window) this does nothing.
    """
    sys.modules.setdefault("triton", None)  # type: ignore[arg-type]  (import triton -> ImportError)


def application():
    """The QApplication (created once)."""
    from PySide6.QtWidgets import QApplication

    keep_triton_out()
    app = QApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1])
        app.setOrganizationName("medviewer")
        app.setApplicationName("medviewer")
    return app


def run_app(path: str | None = None, *, series: str | None = None, screenshot: str | None = None,
            seg: str | None = None, size: tuple[int, int] = (1280, 900), layout: str = "2x2") -> int:
    """Open the main window (and ``path`` in it); with ``screenshot``, save the views and exit."""
    if not display_available():
        raise MedviewerError("no display to open the window on (set DISPLAY, or run under xvfb-run)")
    if screenshot is not None:
        folder = os.path.dirname(os.path.abspath(screenshot))
        if not os.path.isdir(folder):
            raise MedviewerError("folder does not exist", folder)
    if path is not None and not os.path.exists(path):
        raise MedviewerError("no such file or folder", path)
    if seg is not None and not os.path.exists(seg):
        raise MedviewerError("no such file", seg)
    app = application()
    from PySide6.QtCore import QTimer

    from medviewer.ui.main_window import MainWindow

    window = MainWindow()
    window.resize(*size)
    window.set_layout(layout)
    outcome = {"code": 0}

    def say_dropped(volume):  # on the terminal too: what a partial load left out (io.dropped_note)
        from medviewer.io import dropped_note

        if dropped_note(volume):
            print(f"medviewer: note: {dropped_note(volume)}", file=sys.stderr)
    window.volume_loaded.connect(say_dropped)
    if seg is not None:
        def add_seg(_volume):
            try:
                window.load_segmentation(os.path.abspath(seg))
            except MedviewerError as exc:
                window._fail(str(exc))
        window.volume_loaded.connect(add_seg)   # connected first: loaded before the screenshot
    if screenshot is not None:
        window.quiet = True
        # the views get the width (a screenshot is of the views): the docks on the right go
        for dock in (window.plugins_dock, window.pacs_dock, window.measurements_dock):
            dock.hide()
        # a picture of the four views: the 3D one with its volume rendered (the window renders
        # it only when asked, for its cost on the GUI thread)
        window.set_volume_rendering(True)

        def shoot(_volume):
            def save():
                if window.grid.views["3d"].building:   # its copy to render is being made
                    QTimer.singleShot(100, save)
                    return
                window.grid.render_all()
                try:
                    written = window.save_views_screenshot(screenshot)
                except MedviewerError as exc:   # e.g. a DICOM key image of a NIfTI: say so, and exit
                    failed(str(exc))
                    return
                print(f"Wrote {written}")
                app.exit(0)
            QTimer.singleShot(200, save)

        def failed(message):
            print(f"medviewer: {message}", file=sys.stderr)
            outcome["code"] = 1
            app.exit(1)
        window.volume_loaded.connect(shoot)
        window.load_failed.connect(failed)
    window.show()
    if path is not None:
        window.open_path(path, series=series)
    elif screenshot is not None:
        raise MedviewerError("--screenshot needs a study to open")
    code = app.exec()
    window.close()
    return code or outcome["code"]
