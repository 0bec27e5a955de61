"""Reading what the 2D views draw: the screen pixel of a patient point, and the colour there
(read back from VTK with vtkWindowToImageFilter; QWidget.grab() of a VTK widget gives noise)."""

from __future__ import annotations

from medviewer.render.vtk_util import capture


def screen_rc(window, view_name, point):
    """(row, col) of the screen pixel where patient point ``point`` is drawn in a 2D view."""
    view = window.grid.views[view_name]
    x, y = view.patient_to_display(point)
    h = view.render_window.GetSize()[1]
    return h - 1 - int(round(y)), int(round(x))


def patch(window, view_name, point, radius=2):
    """Mean RGB of a small square around where ``point`` (LPS mm) is drawn in a 2D view."""
    image = capture(window.grid.views[view_name].render_window)
    r, c = screen_rc(window, view_name, point)
    return image[r - radius:r + radius + 1, c - radius:c + radius + 1].reshape(-1, 3).mean(axis=0)
