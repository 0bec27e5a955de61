"""NIfTI / NRRD / MetaImage round trips keep voxels and geometry; writes are atomic."""

import os

import numpy as np
import pytest

from medviewer.core import MedviewerError, Volume
from medviewer.io import read_image, write_image


def oblique():
    c, s = np.cos(0.4), np.sin(0.4)
    direction = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    array = np.random.default_rng(1).integers(-1000, 1000, size=(5, 6, 7)).astype(np.int16)
    return Volume(array, spacing=(0.7, 0.8, 3.0), origin=(-12.5, 40.0, -300.0), direction=direction)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"])
def test_round_trip_keeps_geometry(tmp_path, suffix):
    v = oblique()
    path = tmp_path / f"image{suffix}"
    write_image(v, path)
    back = read_image(path)
    assert np.array_equal(back.array, v.array)
    assert back.same_grid(v)
    assert sorted(os.listdir(tmp_path)) == sorted(["image" + suffix] + (["image.zraw"] if suffix == ".mhd" else []))


def test_no_overwrite_without_force(tmp_path):
    path = tmp_path / "mask.nrrd"
    write_image(oblique(), path)
    with pytest.raises(MedviewerError, match="already exists"):
        write_image(oblique(), path)
    write_image(oblique().with_array(np.zeros((5, 6, 7), np.uint8)), path, force=True)
    assert read_image(path).array.max() == 0


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(MedviewerError, match="No space left"):
        write_image(oblique(), tmp_path / "x.nii.gz")
    assert os.listdir(tmp_path) == []


def test_bad_image_files(tmp_path):
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"garbage")
    with pytest.raises(MedviewerError, match="cannot be read") as err:
        read_image(bad)
    assert str(bad) in str(err.value)
    with pytest.raises(MedviewerError, match="unknown image format"):
        write_image(oblique(), tmp_path / "x.png")
    with pytest.raises(MedviewerError, match="folder does not exist"):
        write_image(oblique(), tmp_path / "no" / "x.nrrd")
