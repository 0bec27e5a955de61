"""The view grid: axial, coronal, sagittal and 3D VTK widgets in a 1x1 or 2x2 layout."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QTimer
from PySide6.QtWidgets import QGridLayout, QWidget
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor

from medviewer.core.document import Document
from medviewer.core.volume import Volume
from medviewer.render.slice_view import SliceView
from medviewer.render.volume_view import MAX_RENDER_VOXELS, VolumeView, reduced_for_rendering
from medviewer.render.vtk_util import capture
from medviewer.ui.tasks import Task

VIEW_NAMES = ("axial", "coronal", "sagittal", "3d")


class RenderScheduler:
    """Coalesces render requests: at most one render per view per turn of the event loop, and
    none while the view's ``widget`` is hidden (a hidden 3D view rendered a chest CT for seconds);
    the grid renders the views it shows again.

    The views waiting to render take turns: one render per turn of the event loop, the next in
    the turn after (a click's result redraws four views at 20-60 ms each; drawn in one turn they
    froze the window for 150-250 ms, taking turns no gap is longer than one view's render)."""

    _waiting: list["RenderScheduler"] = []
    _turn_posted = False

    def __init__(self, render_window, widget: QWidget | None = None) -> None:
        self.render_window = render_window
        self.widget = widget
        self.pending = False
        self.enabled = True

    def request(self) -> None:
        if self.pending or not self.enabled:
            return
        self.pending = True
        RenderScheduler._waiting.append(self)
        RenderScheduler._post_turn()

    @classmethod
    def _post_turn(cls) -> None:
        if not cls._turn_posted:
            cls._turn_posted = True
            QTimer.singleShot(0, cls._next)

    @classmethod
    def _next(cls) -> None:
        cls._turn_posted = False
        if cls._waiting:
            cls._waiting.pop(0)._render()
        if cls._waiting:
            cls._post_turn()

    def _render(self) -> None:
        self.pending = False
        try:
            if self.enabled and (self.widget is None or not self.widget.isHidden()):
                self.render_window.Render()
        except RuntimeError:   # its widget was deleted (the window closed) while it waited
            self.enabled = False


class ViewGrid(QWidget):
    """Four VTK widgets; ``layout_mode`` '2x2' shows all, '1x1' only ``active``."""

    def __init__(self, document: Document, parent=None, on_hover=None) -> None:
        super().__init__(parent)
        self.document = document
        self.widgets: dict[str, QVTKRenderWindowInteractor] = {}
        self.schedulers: dict[str, RenderScheduler] = {}
        self.views: dict[str, SliceView | VolumeView] = {}
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(2)
        self._grid = grid
        for n, name in enumerate(VIEW_NAMES):
            w = QVTKRenderWindowInteractor(self)
            w.setObjectName(f"view-{name}")
            rw = w.GetRenderWindow()
            sched = RenderScheduler(rw, w)
            iren = rw.GetInteractor()
            if name == "3d":
                view = VolumeView(document, rw, iren, request_render=sched.request, reduce=self._reduce)
            else:
                view = SliceView(document, name, rw, iren, request_render=sched.request, on_hover=on_hover)
            self.widgets[name] = w
            self.schedulers[name] = sched
            self.views[name] = view
            grid.addWidget(w, n // 2, n % 2)
            w.Initialize()
        self.layout_mode = "2x2"
        self.active = "axial"
        self._reductions: list[Task] = []

    def _reduce(self, volume: Volume, done) -> None:
        """The 3D view's copy of ``volume`` to render, made in a worker thread (a 512 x 512 x 300
        CT takes a second or two to average down); ``done`` runs on the GUI thread."""
        if volume.array.size <= MAX_RENDER_VOXELS:
            done(volume, volume)   # small enough: rendered as it is
            return
        task = Task(lambda progress, cancelled: reduced_for_rendering(volume), "3d-copy", self)
        task.finished.connect(lambda copy: done(volume, copy))
        task.failed.connect(lambda _message: done(volume, volume))   # (memory?) the volume itself
        task.ended.connect(lambda: self._reductions.remove(task))
        self._reductions.append(task)
        task.start()

    def set_layout(self, mode: str, active: str | None = None) -> None:
        """'2x2' (all four views) or '1x1' (only ``active``)."""
        if active is not None:
            self.active = active
        self.layout_mode = mode
        for name, w in self.widgets.items():
            w.setVisible(mode == "2x2" or name == self.active)
        self.views["3d"].set_active(not self.widgets["3d"].isHidden())
        self.request_all()

    def visible_views(self) -> list[str]:
        return [n for n in VIEW_NAMES if self.widgets[n].isVisible()]

    def render_all(self) -> None:
        for name in self.visible_views():
            self.widgets[name].GetRenderWindow().Render()

    def request_all(self) -> None:
        """Render the visible views soon, each in a turn of the event loop of its own (a first
        frame of a new image takes a few hundred milliseconds on software OpenGL: four in a row
        froze the window)."""
        for name in self.visible_views():
            self.schedulers[name].request()

    def reset_cameras(self) -> None:
        for view in self.views.values():
            view.reset_camera()
        self.request_all()

    def capture_view(self, name: str) -> np.ndarray:
        """Pixels of one view (h, w, 3), read back from its render window."""
        return capture(self.widgets[name].GetRenderWindow())

    def paste_views(self, canvas: np.ndarray, relative_to: QWidget) -> np.ndarray:
        """Draw each visible view's pixels into ``canvas`` (an image of ``relative_to``)."""
        for name in self.visible_views():
            w = self.widgets[name]
            pixels = self.capture_view(name)
            pos = w.mapTo(relative_to, QPoint(0, 0))
            h = min(pixels.shape[0], canvas.shape[0] - pos.y())
            wd = min(pixels.shape[1], canvas.shape[1] - pos.x())
            if h > 0 and wd > 0:
                canvas[pos.y():pos.y() + h, pos.x():pos.x() + wd] = pixels[:h, :wd]
        return canvas

    def capture_grid(self) -> np.ndarray:
        """The visible views as one image, laid out as on screen."""
        canvas = np.zeros((self.height(), self.width(), 3), dtype=np.uint8)
        return self.paste_views(canvas, self)

    def close_views(self) -> None:
        for task in self._reductions:
            task.cancel()
        for sched in self.schedulers.values():
            sched.enabled = False
        for view in self.views.values():
            view.close()
        for w in self.widgets.values():
            w.Finalize()
