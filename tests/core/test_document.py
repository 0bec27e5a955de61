"""The Document (layers, cursor, events) and putting label maps onto the image grid."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.core.document import Box, BoxLayer, Document, ImageLayer, LabelLayer
from medviewer.core.errors import MedviewerError
from medviewer.core.events import EventEmitter
from medviewer.core.resample import labels_onto_grid
from medviewer.core.volume import Volume


def image(shape=(10, 20, 30), spacing=(1.0, 1.0, 2.0), origin=(-15.0, -10.0, 0.0)):
    return Volume(np.zeros(shape, np.int16), spacing=spacing, origin=origin)


def recorder(doc):
    log = []
    for name in ("layer_added", "layer_removed", "layer_changed", "cursor_changed"):
        doc.events.connect(name, lambda *args, n=name: log.append((n, *args)))
    return log


def test_events_reach_every_listener_even_when_one_fails():
    events = EventEmitter()
    heard = []
    events.connect("x", lambda v: (_ for _ in ()).throw(ValueError("boom")))
    events.connect("x", heard.append)
    with pytest.raises(ValueError):
        events.emit("x", 1)
    assert heard == [1]
    events.disconnect("x", heard.append)
    assert events.listener_count("x") == 1


def test_layers_and_events():
    doc = Document()
    log = recorder(doc)
    vol = image()
    img = doc.add_layer(ImageLayer(name="ct", volume=vol))
    assert doc.image is img
    assert log[0] == ("layer_added", img)
    assert log[1][0] == "cursor_changed"                 # the cursor goes to the image centre
    assert vol.contains_point(doc.cursor)
    labels = doc.add_layer(LabelLayer(name="seg", volume=vol.with_array(np.ones(vol.shape, np.uint8))))
    boxes = doc.add_layer(BoxLayer(name="det", boxes=[Box((1, 2, 3), (0, 0, 0), label="A", score=0.5)]))
    assert boxes.boxes[0].lower == (0, 0, 0) and boxes.boxes[0].upper == (1, 2, 3)
    assert doc.layers == (img, labels, boxes)
    log.clear()
    doc.update_layer(labels, opacity=3.0, visible=False)
    assert log == [("layer_changed", labels, {"opacity", "visible"})]
    assert labels.opacity == 1.0
    log.clear()
    doc.update_layer(labels, visible=False)              # no change, no event
    assert log == []
    with pytest.raises(AttributeError):
        doc.update_layer(labels, window=3)
    doc.remove_layer(boxes)
    assert log == [("layer_removed", boxes)]
    assert labels.color_of(1) == labels.color and labels.color_of(2) != labels.color_of(3)


def test_displayed_image_is_the_topmost_visible_image_layer():
    doc = Document()
    assert doc.displayed_image is None
    vol = image()
    ref = doc.add_layer(ImageLayer(name="ct", volume=vol))
    assert doc.displayed_image is ref
    labels = doc.add_layer(LabelLayer(name="seg", volume=vol.with_array(np.ones(vol.shape, np.uint8))))
    den = doc.add_layer(ImageLayer(name="denoised", volume=vol.with_array(vol.array + 7)))
    top = doc.add_layer(ImageLayer(name="top", volume=vol.with_array(vol.array + 9)))
    assert doc.image is ref and doc.displayed_image is top       # the reference stays the first
    doc.update_layer(top, visible=False)
    assert doc.displayed_image is den
    doc.update_layer(den, visible=False)
    assert doc.displayed_image is ref
    doc.update_layer(ref, visible=False)                          # none visible: the reference
    assert doc.displayed_image is ref
    doc.update_layer(den, visible=True)
    assert doc.displayed_image is den
    doc.remove_layer(den)
    assert doc.displayed_image is ref
    assert doc.layers == (ref, labels, top)
    p = vol.index_to_patient((3, 4, 5))
    assert doc.value_at(p) == 0 and doc.value_at(p, top) == 9


def test_box_caption_is_label_and_score():
    assert Box((0, 0, 0), (1, 1, 1), label="tumour", score=0.9).caption == "tumour 0.90"
    assert Box((0, 0, 0), (1, 1, 1), label="nodule").caption == "nodule"
    assert Box((0, 0, 0), (1, 1, 1), score=0.5).caption == "0.50"
    assert Box((0, 0, 0), (1, 1, 1)).caption == ""


def test_label_layer_must_be_on_the_image_grid_and_integer():
    doc = Document()
    vol = image()
    with pytest.raises(MedviewerError, match="open an image"):
        doc.add_layer(LabelLayer(name="x", volume=vol.with_array(np.zeros(vol.shape, np.uint8))))
    doc.add_layer(ImageLayer(name="ct", volume=vol))
    other = Volume(np.zeros((5, 5, 5), np.uint8))
    with pytest.raises(MedviewerError, match="not on the image grid"):
        doc.add_layer(LabelLayer(name="x", volume=other))
    with pytest.raises(MedviewerError, match="integer"):
        LabelLayer(name="x", volume=vol.with_array(np.zeros(vol.shape, np.float32)))


def test_cursor_is_clamped_into_the_image():
    doc = Document()
    vol = image()
    doc.add_layer(ImageLayer(name="ct", volume=vol))
    doc.set_cursor((1000.0, -1000.0, 5.0))
    ijk = vol.patient_to_index(doc.cursor)
    assert ijk[0] == pytest.approx(29) and ijk[1] == pytest.approx(0) and ijk[2] == pytest.approx(2.5)
    assert doc.value_at(doc.cursor) == 0.0
    assert doc.value_at((1e6, 0, 0)) is None


def test_labels_onto_grid_resamples_by_patient_space():
    ref = image(shape=(10, 20, 30), spacing=(1.0, 1.0, 2.0), origin=(-15.0, -10.0, 0.0))
    # a coarser mask, shifted, with its index x axis flipped (direction -x)
    mask = np.zeros((5, 10, 15), np.uint8)
    mask[2, 5, 7] = 2                     # one 2 x 2 x 4 mm voxel
    flipped = np.diag([-1.0, 1.0, 1.0])
    labels = Volume(mask, spacing=(2.0, 2.0, 4.0), origin=(14.0, -10.0, 0.0), direction=flipped)
    centre = labels.voxel_to_patient((2, 5, 7))
    out = labels_onto_grid(labels, ref)
    assert out.same_grid(ref) and out.array.dtype == np.uint8
    z, y, x = ref.patient_to_voxel(centre)
    assert out.array[z, y, x] == 2
    assert out.array.sum() == 2 * (out.array > 0).sum() and (out.array > 0).sum() >= 4
    same = labels_onto_grid(ref.with_array(np.ones(ref.shape, bool)), ref)
    assert same.array.dtype == np.uint8 and same.array.all()
    far = Volume(mask, spacing=(2.0, 2.0, 4.0), origin=(1000.0, 1000.0, 1000.0))
    with pytest.raises(MedviewerError, match="overlap"):
        labels_onto_grid(far, ref)
    with pytest.raises(MedviewerError, match="non-integer"):
        labels_onto_grid(ref.with_array(np.full(ref.shape, 0.5, np.float32)), ref)
