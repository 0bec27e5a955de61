"""The views draw the topmost visible image layer (a plugin's output shows up; unticking or
removing it shows the image below), and box layers carry captions (label and score) on the slices
their boxes cross. Colours are read back from the VTK render windows."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from medviewer.core.document import Box, BoxLayer, ImageLayer
from medviewer.render.vtk_util import capture, local_image
from tests.ui.pixels import patch, screen_rc

pytestmark = [pytest.mark.gui, pytest.mark.timeout(120)]


def _soft_tissue_point(volume, cursor):
    """A voxel on the cursor's axial slice, away from the edges, drawn mid-grey in W400/L40
    (-100..180 HU), found from the values."""
    z = volume.patient_to_voxel(cursor)[0]
    hu = volume.array[z].astype(float)
    ny, nx = hu.shape
    inner = np.zeros_like(hu, dtype=bool)
    inner[ny // 4: 3 * ny // 4, nx // 4: 3 * nx // 4] = True
    ys, xs = np.nonzero(inner & (hu > -100) & (hu < 150))
    assert len(ys), "no soft tissue on this slice"
    i = len(ys) // 2
    return z, ys[i], xs[i]


def _camera(view):
    cam = view.renderer.GetActiveCamera()
    return np.array([*cam.GetFocalPoint(), *cam.GetPosition(), cam.GetParallelScale()])


def test_an_image_layer_on_top_is_drawn_and_untick_or_remove_shows_the_one_below(window, qtbot, demo_volume):
    window.set_volume(demo_volume)
    doc = window.document
    reference = doc.image
    axial = window.grid.views["axial"]
    three_d = window.grid.views["3d"]
    window.apply_volume_preset("CT MIP")
    z, y, x = _soft_tissue_point(demo_volume, doc.cursor)
    p = demo_volume.voxel_to_patient((z, y, x))
    original = patch(window, "axial", p)
    assert original.max() < 220, original                       # not white before
    cursor, camera = doc.cursor, _camera(axial)
    plain_3d = capture(three_d.render_window).astype(int)

    bright = demo_volume.array.copy()
    bright[max(0, z - 3):z + 4, max(0, y - 6):y + 7, max(0, x - 6):x + 7] = 3000   # a bright cube round p
    layer = doc.add_layer(ImageLayer(name="bright", volume=demo_volume.with_array(bright),
                                     window=reference.window, level=reference.level))
    assert doc.displayed_image is layer and axial.displayed_layer is layer
    shown = patch(window, "axial", p)
    assert shown.min() > 240, shown                              # the new layer is drawn: white
    assert np.allclose(doc.cursor, cursor)                       # crosshair and slice stay
    assert np.allclose(_camera(axial), camera)                   # camera kept (same grid)
    assert three_d._mapper.GetInput() is local_image(layer.volume)
    bright_3d = capture(three_d.render_window).astype(int)
    assert (np.abs(bright_3d - plain_3d).sum(axis=2) > 60).sum() > 20   # the cube shows in the MIP

    # window/level presets act on the displayed image, not the reference below
    w_ref = (reference.window, reference.level)
    window.apply_window_preset("bone")
    assert (layer.window, layer.level) == (1800.0, 400.0)
    assert (reference.window, reference.level) == w_ref
    window.apply_window_preset("soft tissue")

    # untick it in the layers panel: the reference image is drawn again
    panel = window.layers
    panel.item_of(layer).setCheckState(0, Qt.Unchecked)
    assert layer.visible is False and doc.displayed_image is reference
    assert np.abs(patch(window, "axial", p) - original).max() < 12
    assert np.allclose(_camera(axial), camera)
    assert three_d._mapper.GetInput() is local_image(reference.volume)
    assert np.abs(capture(three_d.render_window).astype(int) - plain_3d).mean() < 1.0
    panel.item_of(layer).setCheckState(0, Qt.Checked)
    assert patch(window, "axial", p).min() > 240

    # remove it with the panel's button (the reference itself cannot be removed)
    panel.tree.setCurrentItem(panel.item_of(reference))
    assert not panel.remove_button.isEnabled()
    panel.tree.setCurrentItem(panel.item_of(layer))
    assert panel.remove_button.isEnabled()
    panel.remove_button.click()
    assert doc.layers_of(ImageLayer) == [reference] and axial.displayed_layer is reference
    assert np.abs(patch(window, "axial", p) - original).max() < 12
    assert np.allclose(_camera(axial), camera) and np.allclose(doc.cursor, cursor)


def test_window_drag_changes_the_displayed_image_layer(window, qtbot, demo_volume):
    window.set_volume(demo_volume)
    doc = window.document
    reference = doc.image
    top = doc.add_layer(ImageLayer(name="copy", volume=demo_volume.with_array(demo_volume.array.copy()),
                                   window=reference.window, level=reference.level))
    w_ref, w_top = reference.window, top.window
    iren = window.grid.widgets["axial"].GetRenderWindow().GetInteractor()
    iren.SetEventInformationFlipY(100, 100, 0, 0)
    iren.InvokeEvent("RightButtonPressEvent")
    iren.SetEventInformationFlipY(160, 100, 0, 0)
    iren.InvokeEvent("MouseMoveEvent")
    iren.InvokeEvent("RightButtonReleaseEvent")
    assert top.window > w_top and reference.window == w_ref


def _magenta(pixels):
    px = pixels.reshape(-1, 3).astype(int)
    return int(((px[:, 0] > 180) & (px[:, 2] > 180) & (px[:, 1] < 90)).sum())


def test_box_captions_show_label_and_score_on_the_slices_the_box_crosses(window, qtbot, demo_volume):
    window.set_volume(demo_volume)
    doc = window.document
    c = np.array(doc.cursor)
    layer = doc.add_layer(BoxLayer(name="detections", color=(1.0, 0.0, 1.0), boxes=[
        Box(tuple(c - 20), tuple(c + 20), label="tumour", score=0.9)]))
    axial = window.grid.views["axial"]
    corner = c + (-20, -20, 0)          # the box's top-left corner on the axial screen (R, A)
    assert axial.box_captions(layer) == [("tumour 0.90", pytest.approx(tuple(corner)))]
    # the 3D view writes it at the box's superior right anterior corner
    assert window.grid.views["3d"].box_captions(layer) == [("tumour 0.90", pytest.approx(tuple(c + (-20, -20, 20))))]

    def caption_region():
        image = capture(axial.render_window)
        r, col = screen_rc(window, "axial", corner)
        return image[max(0, r - 16):r - 3, col + 3:col + 70]   # above the rectangle's top edge

    assert _magenta(caption_region()) > 8                        # the text, in the layer colour
    doc.update_layer(layer, visible=False)
    assert _magenta(caption_region()) == 0 and axial.box_captions(layer) == []
    assert window.grid.views["3d"].box_captions(layer) == []
    doc.update_layer(layer, visible=True)
    doc.set_cursor(c + (0, 0, 40))      # a slice the box does not cross: no caption
    assert axial.box_captions(layer) == []
    corner = c + (-20, -20, 40)
    assert _magenta(caption_region()) == 0
    doc.set_cursor(c)
    assert _magenta(caption_region()) > 8
    doc.update_layer(layer, color=(0.0, 1.0, 0.0))                 # recoloured with the layer
    assert _magenta(caption_region()) == 0


def _box(actor, renderer):
    """The text actor's box in the view, in pixels: x0, x1, y0, y1."""
    box = [0.0] * 4
    actor.GetBoundingBox(renderer, box)   # about the actor's anchor
    w, h = renderer.GetSize()
    x, y = actor.GetPosition()            # normalized viewport
    return [box[0] + x * w, box[1] + x * w, box[2] + y * h, box[3] + y * h]


@pytest.mark.parametrize("width", [150, 600])
def test_the_top_orientation_letter_never_covers_the_slice_title(window, qtbot, demo_volume, width):
    """A narrow view (a laptop screen with the docks open) has no room for the slice title, the
    series (top right) and the top letter side by side: the letter goes below them; a wide one
    keeps it at the top."""
    window.resize(1400, 700)
    window.set_volume(demo_volume)
    widget = window.grid.widgets["coronal"]
    widget.setFixedWidth(width)
    qtbot.waitUntil(lambda: widget.width() == width)
    view = window.grid.views["coronal"]
    view.render()
    title, letter = _box(view._title, view.renderer), _box(view._letters["top"], view.renderer)
    h = view.renderer.GetSize()[1]
    overlap_x = title[1] > letter[0] and letter[1] > title[0]
    overlap_y = title[3] > letter[2] and letter[3] > title[2]
    assert not (overlap_x and overlap_y)
    study = _box(view.corners.study, view.renderer)
    assert not (study[1] > letter[0] and letter[1] > study[0] and study[3] > letter[2] and letter[3] > study[2])
    assert view._letters["top"].GetInput() == "S"
    if width == 150:
        assert letter[3] <= title[2] + 1 < h - 10            # below the title
    else:
        assert letter[3] == pytest.approx(0.99 * h)           # at the top
    assert letter[0] + letter[1] == pytest.approx(width)      # centred
    widget.setMinimumWidth(0)
    widget.setMaximumWidth(16777215)
