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
