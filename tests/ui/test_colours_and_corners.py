"""Who is who in the views (issue 24), read from the rendered pixels (vtkWindowToImageFilter, see
tests/ui/pixels.py): the user's segments take colours no imported layer uses (the first is not an
RTSTRUCT's red), the Layers panel's colour control recolours every kind of label layer in the
views, and click markers read on any segment colour."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QColorDialog

from medviewer.core.document import LABEL_PALETTE, LabelLayer
from medviewer.core.segments import (
    DEFAULT_COLORS, NEGATIVE_CLICK_RGB, POSITIVE_CLICK_RGB, SEGMENT_PALETTE, Segment, segment_color,
)
from medviewer.render.vtk_util import capture
from tests.ui.pixels import patch, screen_rc

pytestmark = [pytest.mark.gui, pytest.mark.timeout(180)]


def lesion(demo_series, index):
    return json.loads((demo_series / "lesions.json").read_text())["lesions"][index]


def _ours(window, demo_series, index=0, radius=8.0):
    """A segment of the user's own, brushed on demo lesion ``index``; its centre (LPS mm)."""
    centre = np.asarray(lesion(demo_series, index)["center_mm"])
    window.segment_editor.radius.setValue(radius)
    window.segment_editor.paint_disc("axial", centre, tool="brush")
    return centre


def _expert(window, demo_volume, demo_series, index=2, color=(255, 0, 0)) -> tuple[LabelLayer, np.ndarray]:
    """An imported layer (as an RTSTRUCT loads: its own colour per label) on demo lesion ``index``."""
    from medviewer.io import read_image
    from medviewer.ui.annotations_ui import label_layer_of

    lesions = read_image(demo_series / "lesions.nii.gz").array
    labels = demo_volume.with_array((lesions == lesion(demo_series, index)["label"]).astype(np.uint8))
    layer = window.document.add_layer(label_layer_of(labels, [Segment(1, "GTV", color)], "expert"))
    return layer, np.asarray(lesion(demo_series, index)["center_mm"])


def _inside(window, centre):
    """A point inside a lesion around ``centre``, off the crosshair lines, in the axial view."""
    window.document.set_cursor(centre)
    view = window.grid.views["axial"]
    return centre + 3.0 * (view.right + view.up)


def test_our_palette_is_none_that_imported_layers_take():
    imported = np.array([tuple(255 * c for c in p) for p in LABEL_PALETTE] + list(DEFAULT_COLORS)
                        + [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255)], float)
    ours = np.array(SEGMENT_PALETTE, float)
    assert np.linalg.norm(ours[:, None] - imported[None], axis=2).min() > 60
    apart = np.linalg.norm(ours[:, None] - ours[None], axis=2) + 1000 * np.eye(len(ours))
    assert apart.min() > 100
    assert segment_color(1) == SEGMENT_PALETTE[0] and segment_color(len(SEGMENT_PALETTE) + 1) == SEGMENT_PALETTE[0]
    assert np.linalg.norm(np.subtract(segment_color(1), (255, 0, 0))) > 250       # the first is far from red
    assert POSITIVE_CLICK_RGB != NEGATIVE_CLICK_RGB


def test_our_first_segment_and_an_imported_rtstruct_are_told_apart(window, demo_volume, demo_series):
    window.set_volume(demo_volume)
    mine = _ours(window, demo_series)
    editor = window.segment_editor
    assert editor.segments[1].color == SEGMENT_PALETTE[0]
    assert editor.layer.color == pytest.approx(tuple(c / 255 for c in SEGMENT_PALETTE[0]))   # the Layers swatch
    _, theirs = _expert(window, demo_volume, demo_series)
    ours_rgb = patch(window, "axial", _inside(window, mine))
    expert_rgb = patch(window, "axial", _inside(window, theirs))
    assert expert_rgb[0] > expert_rgb[1] + 60 and expert_rgb[0] > expert_rgb[2] + 60, expert_rgb   # red
    assert ours_rgb[1] > ours_rgb[0] + 60, ours_rgb                                    # ours: teal, not red
    assert np.linalg.norm(ours_rgb - expert_rgb) > 100


def _pick_colour(monkeypatch, rgb):
    monkeypatch.setattr(QColorDialog, "getColor", lambda *a, **k: QColor(*rgb))


def test_the_layers_colour_control_recolours_an_imported_layer_and_ours_in_the_views(
        window, demo_volume, demo_series, monkeypatch):
    window.set_volume(demo_volume)
    mine = _ours(window, demo_series)
    expert, theirs = _expert(window, demo_volume, demo_series)
    panel = window.layers
    assert expert.label_colors == {1: (1.0, 0.0, 0.0)}        # its own colour per label, as read
    panel.tree.setCurrentItem(panel.item_of(expert))
    _pick_colour(monkeypatch, (0, 0, 255))
    panel.color_button.click()
    rgb = patch(window, "axial", _inside(window, theirs))
    assert rgb[2] > rgb[0] + 60 and rgb[2] > rgb[1] + 60, rgb  # blue in the views, not only the swatch
    assert expert.color == (0.0, 0.0, 1.0)

    editor = window.segment_editor
    editor.add_segment("second")                               # current: segment 2 (no voxels)
    editor.select_segment(1)
    panel.tree.setCurrentItem(panel.item_of(editor.layer))
    _pick_colour(monkeypatch, (255, 255, 0))
    panel.color_button.click()
    assert editor.segments[1].color == (255, 255, 0)          # the editor's current segment
    assert editor.segments[2].color == SEGMENT_PALETTE[1]     # the others keep theirs
    rgb = patch(window, "axial", _inside(window, mine))
    assert rgb[0] > rgb[2] + 60 and rgb[1] > rgb[2] + 60, rgb  # yellow


@pytest.mark.parametrize("segment_rgb", [*SEGMENT_PALETTE, (255, 0, 0), (255, 255, 255), (0, 0, 0)])
def test_click_markers_read_on_any_segment(window, demo_volume, segment_rgb):
    """A positive and a negative marker on a segment of each colour (fully opaque: the worst case)
    differ from the segment around them and from each other; each is ringed in the other brightness."""
    from medviewer.render.markers import PointMarkers

    window.set_volume(demo_volume)
    labels = np.zeros(demo_volume.shape, np.uint8)
    k = demo_volume.shape[0] // 2
    labels[k - 2:k + 3, 10:-10, 10:-10] = 1
    window.document.add_layer(LabelLayer(name="seg", volume=demo_volume.with_array(labels), opacity=1.0,
                                         label_colors={1: tuple(c / 255 for c in segment_rgb)}))
    centre = demo_volume.index_to_patient([demo_volume.shape[2] / 2, demo_volume.shape[1] / 2, k])
    window.document.set_cursor(centre)
    view = window.grid.views["axial"]
    window.set_overlays(crosshair=False)
    pos, neg = centre - 25.0 * view.right, centre + 25.0 * view.right
    markers = PointMarkers(view)
    try:
        markers.set_points([pos, neg], [POSITIVE_CLICK_RGB, NEGATIVE_CLICK_RGB])
        view.render()
        image = capture(view.render_window).astype(float)
        around = patch(window, "axial", centre - 25.0 * view.right + 12.0 * view.up)   # the segment beside
        for point, fill, ring in ((pos, POSITIVE_CLICK_RGB, 0), (neg, NEGATIVE_CLICK_RGB, 255)):
            r, c = screen_rc(window, "axial", point)
            centre_rgb = image[r - 1:r + 2, c - 1:c + 2].reshape(-1, 3).mean(axis=0)
            assert np.abs(centre_rgb - fill).max() < 30, (segment_rgb, centre_rgb)
            ring_rgb = image[r, c + 5]                       # 4.5 px out: the 2 px ring
            assert np.abs(ring_rgb - ring).max() < 40, (segment_rgb, ring_rgb)
            # the marker and its ring together stand out of the segment: one of them far from it
            assert max(np.linalg.norm(centre_rgb - around), np.linalg.norm(ring_rgb - around)) > 150
    finally:
        markers.close()


# ---- corner annotations -------------------------------------------------------------------------

def _light_pixels(view, x0, x1, y0, y1) -> int:
    """How many light (text) pixels the rendered view has in a box of fractions of its size,
    (x0, x1) from the left, (y0, y1) from the top."""
    view.render()
    image = capture(view.render_window).astype(int)
    h, w = image.shape[:2]
    box = image[int(y0 * h):int(y1 * h), int(x0 * w):int(x1 * w)]
    return int((box.min(axis=2) > 180).sum())


def _orange_pixels(view) -> int:
    """Orange pixels where the derived-image note is drawn (above the bottom letter, centred)."""
    view.render()
    image = capture(view.render_window).astype(int)
    h, w = image.shape[:2]
    box = image[int(0.75 * h):int(0.95 * h), int(0.1 * w):int(0.9 * w)]
    return int(((box[..., 0] > 200) & (box[..., 1] > 100) & (box[..., 1] < 180) & (box[..., 2] < 90)).sum())


def test_corner_annotations_say_who_what_and_where(window, demo_volume):
    window.resize(1000, 800)
    window.set_volume(demo_volume)
    window.set_overlays(crosshair=False)
    axial = window.grid.views["axial"]
    corners = axial.corners
    axial.render()
    title, study, bottom = (corners.title.GetInput(), corners.study.GetInput(), corners.slice_text.GetInput())
    k, n = axial.slice_index()
    assert title.splitlines() == [f"Axial  {k}/{n}", "Demo, Phantom", "ID MEDVIEWER-DEMO", "O"]
    assert study.splitlines() == ["2026-01-15", "Se 1 Phantom chest-abdomen 2.5 mm"]
    z = axial.plane_origin()[2]
    lines = bottom.splitlines()
    assert lines[0] == f"Pos {'S' if z > 0 else 'I'} {abs(z):.1f} mm  Thk 2.50 mm"
    zoom = float(lines[1].split()[1].rstrip("%"))
    # 100%: one screen pixel per image pixel (1.4 mm here)
    h = axial.renderer.GetSize()[1]
    assert zoom == pytest.approx(100 * h / (2 * axial.renderer.GetActiveCamera().GetParallelScale()) * 1.4, rel=0.01)
    assert lines[2] == "W 400  L 40"
    axial.zoom(2.0)
    axial.render()
    assert float(corners.slice_text.GetInput().splitlines()[1].split()[1].rstrip("%")) == pytest.approx(2 * zoom, rel=0.01)
    coronal = window.grid.views["coronal"]
    coronal.render()
    assert "Thk 1.40 mm" in coronal.corners.slice_text.GetInput()      # the reformat's voxel, not the series'
    window.set_slab("max", 10.0)
    assert "Thk 10 mm" in corners.slice_text.GetInput() and "MIP 10 mm" in corners.title.GetInput()
    window.set_slab(None)

    # drawn: text in all four corners of the rendered view
    with_identity = _light_pixels(axial, 0.0, 0.45, 0.0, 0.2)
    assert with_identity > 150 and _light_pixels(axial, 0.55, 1.0, 0.0, 0.12) > 80
    assert _light_pixels(axial, 0.0, 0.45, 0.8, 1.0) > 150


def test_one_toggle_hides_the_identity_for_screenshots(window, demo_volume, tmp_path):
    window.resize(1000, 800)
    window.set_volume(demo_volume)
    window.set_overlays(crosshair=False)
    axial = window.grid.views["axial"]
    before = _light_pixels(axial, 0.0, 0.45, 0.0, 0.2)
    action = window.overlay_actions["identity"]
    assert action.isChecked() and action.text() == "Patient &identity in the views"
    action.trigger()                                          # View > Patient identity, off
    assert not action.isChecked()
    for name in ("axial", "coronal", "sagittal"):
        corners = window.grid.views[name].corners
        text = corners.title.GetInput() + corners.study.GetInput()
        assert "Demo" not in text and "MEDVIEWER-DEMO" not in text and "2026" not in text, text
        assert "Phantom chest-abdomen" in text                # the series stays
    after = _light_pixels(axial, 0.0, 0.45, 0.0, 0.2)
    assert after < before - 100                               # fewer lines drawn, read from the pixels
    assert "Pos " in axial.corners.slice_text.GetInput()      # the rest stays
    window.set_volume(demo_volume)                            # a new image keeps the choice
    assert "Demo" not in axial.corners.title.GetInput()
    window.set_overlays(identity=True)
    assert action.isChecked() and "Demo, Phantom" in axial.corners.title.GetInput()


def test_a_derived_image_shown_says_so_in_the_view(window, demo_volume):
    """As after the Denoise plugin: its image on top is what the views draw; each view says so,
    even with the annotations hidden (a screenshot of it must not pass for the scan)."""
    from medviewer.core.document import ImageLayer

    window.resize(1000, 800)
    window.set_volume(demo_volume)
    window.set_overlays(crosshair=False)
    axial = window.grid.views["axial"]
    assert not axial.corners.derived.GetVisibility() and _orange_pixels(axial) < 5
    smooth = demo_volume.with_array((demo_volume.array // 2).astype(np.int16))
    derived = window.document.add_layer(ImageLayer(name="denoise: gaussian 1 mm", volume=smooth))
    for name in ("axial", "coronal", "sagittal"):
        view = window.grid.views[name]
        assert view.displayed_layer is derived
        assert view.corners.derived.GetVisibility()
        assert view.corners.derived.GetInput() == "Derived image: denoise: gaussian 1 mm"
    assert _orange_pixels(axial) > 80
    window.set_overlays(annotations=False)
    assert axial.corners.derived.GetVisibility() and _orange_pixels(axial) > 80
    window.set_overlays(annotations=True)
    window.document.update_layer(derived, visible=False)      # the original again
    assert not axial.corners.derived.GetVisibility() and _orange_pixels(axial) < 5


def test_corner_text_formats():
    from medviewer.render.overlays.corners import dicom_date, elide, identity_lines, person_name, study_lines

    assert person_name("Doe^John^Q") == "Doe, John Q" and person_name("STS_005") == "STS_005" and person_name(None) == ""
    assert dicom_date("20050702") == "2005-07-02" and dicom_date("2005") == "2005"
    assert identity_lines({"patient_name": "Doe^Jane", "patient_id": "7", "patient_birth_date": "19600101",
                           "patient_sex": "F"}) == ["Doe, Jane", "ID 7", "DOB 1960-01-01  F"]
    assert study_lines({"study_date": "20050702", "series_number": 3, "series_description": "CT"}, False) == ["Se 3 CT"]
    assert elide("IBSI_1_STS_005_CT_image", 10) == "IBSI_1_ST\u2026" and elide("short", 10) == "short"
