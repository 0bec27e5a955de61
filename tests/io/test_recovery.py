"""Recovery copies of segments in progress: kept whole, found for the same image only, gone when discarded."""

from __future__ import annotations

import os

import numpy as np
import pytest

from medviewer.core.segments import Segment
from medviewer.core.volume import Volume
from medviewer.io.recovery import (
    discard_recovery, find_recovery, load_recovery, recovery_key, recovery_root, save_recovery,
)


@pytest.fixture(autouse=True)
def own_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVIEWER_RECOVERY_DIR", str(tmp_path / "recovery"))


def image(uid="1.2.3.4", shape=(6, 20, 30)):
    return Volume(np.zeros(shape, np.int16), spacing=(0.8, 0.8, 2.5), meta={"series_instance_uid": uid})


def test_kept_segments_come_back_for_the_same_image_only():
    volume = image()
    labels = np.zeros(volume.shape, np.uint16)
    labels[2, 5:9, 5:12] = 3
    labels[4, 10:12, 20:25] = 7
    segments = [Segment(3, "tumour", (200, 40, 40)), Segment(7, "node", (40, 200, 40))]
    folder = save_recovery(volume, labels, segments)
    assert os.path.dirname(folder) == recovery_root()
    found = find_recovery(volume)
    assert [(s.label, s.name, s.color) for s in found.segments] == [(3, "tumour", (200, 40, 40)),
                                                                     (7, "node", (40, 200, 40))]
    assert np.array_equal(load_recovery(found, volume), labels)
    assert find_recovery(image(uid="9.9.9")) is None                   # another series
    assert find_recovery(image(shape=(7, 20, 30))) is None             # another grid
    labels[2] = 0
    save_recovery(volume, labels, segments[1:])                         # a later save replaces it whole
    found = find_recovery(volume)
    assert [s.name for s in found.segments] == ["node"] and not load_recovery(found, volume)[2].any()
    discard_recovery(volume)
    assert find_recovery(volume) is None and os.listdir(recovery_root()) == []


def test_a_copy_left_between_the_renames_of_a_save_is_still_found():
    volume = image()
    labels = np.ones(volume.shape, np.uint16)
    folder = save_recovery(volume, labels, [Segment(1, "a")])
    os.replace(folder, folder + ".old")                                 # as a crash mid-save leaves it
    assert find_recovery(volume) is not None


def test_an_image_that_cannot_be_told_apart_is_not_kept():
    anonymous = Volume(np.zeros((2, 3, 4)))
    assert recovery_key(anonymous) is None
    assert save_recovery(anonymous, np.zeros((2, 3, 4), np.uint16), []) is None
    assert find_recovery(anonymous) is None
