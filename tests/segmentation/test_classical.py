"""The classical engine on the demo phantom (known lesions) and on the real lung tumour."""

import json

import numpy as np
import pytest

from medviewer.core import MedviewerError
from medviewer.io import read_image
from medviewer.segmentation.classical import segment_classical
from medviewer.segmentation.guidance import dice


@pytest.fixture(scope="module")
def demo_truth(demo_series):
    lesions = json.load(open(demo_series / "lesions.json"))["lesions"]
    return lesions, read_image(demo_series / "lesions.nii.gz").array


def test_one_click_finds_each_demo_lesion(demo_volume, demo_truth):
    lesions, truth = demo_truth
    for lesion in lesions:
        mask = segment_classical(demo_volume, [lesion["center_mm"]])
        assert dice(mask, truth == lesion["label"]) > 0.75, lesion["name"]
        assert not (mask & (truth > 0) & (truth != lesion["label"])).any()


def test_negative_click_shrinks_the_region(demo_volume, demo_truth):
    lesions, truth = demo_truth
    liver = lesions[2]
    first = segment_classical(demo_volume, [liver["center_mm"]])
    c = np.asarray(liver["center_mm"])
    second = segment_classical(demo_volume, [c - (0, 0, 6)], [c + (0, 0, 9)])
    assert second.sum() < first.sum() * 0.9
    assert not second[tuple(demo_volume.patient_to_voxel(c + (0, 0, 12)))]


def test_needs_a_point_inside(demo_volume):
    with pytest.raises(MedviewerError, match="at least one"):
        segment_classical(demo_volume, [])
    with pytest.raises(MedviewerError, match="outside"):
        segment_classical(demo_volume, [(0, 0, 5000)])


@pytest.mark.data
def test_lung_tumour_from_its_box_centre_stays_in_the_boxes(lung_series):
    from medviewer.io import load_volume
    from medviewer.io.annotations import read_voc_boxes

    volume = load_volume(lung_series)
    boxes = sorted(read_voc_boxes(lung_series.parent / "boxes", volume), key=lambda b: b.slice_index)
    middle = boxes[len(boxes) // 2]
    centre = volume.voxel_to_patient((middle.slice_index, (middle.ymin + middle.ymax) / 2,
                                      (middle.xmin + middle.xmax) / 2))
    m = segment_classical(volume, [centre])
    inside = np.zeros_like(m)
    for b in boxes:
        inside[b.slice_index, int(b.ymin):int(b.ymax) + 1, int(b.xmin):int(b.xmax) + 1] = True
    annotated = [b.slice_index for b in boxes]
    assert m.sum() * np.prod(volume.spacing) > 5000  # more than 5 mL
    assert m[annotated].sum() > 0.6 * m.sum() and (m & inside)[annotated].sum() > 0.9 * m[annotated].sum()
