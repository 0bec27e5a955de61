import glob
import os

import numpy as np
import pydicom
import pytest

from medviewer.core import Volume
from medviewer.io.demo_study import write_ct_series


@pytest.fixture
def small_series(tmp_path):
    """Factory: write a small CT series (z slices of 16 x 12) and return (folder, files by slice)."""

    def make(name="series", nz=8, spacing=(0.8, 0.9, 2.5)):
        folder = tmp_path / name
        folder.mkdir()
        array = (np.arange(nz * 12 * 16).reshape(nz, 12, 16) % 500 - 100).astype(np.int16)
        write_ct_series(Volume(array, spacing=spacing, origin=(-5.0, 7.0, 100.0), modality="CT"), str(folder))
        files = sorted(glob.glob(str(folder / "*.dcm")), key=lambda f: -int(os.path.basename(f)[2:6]))
        files.reverse()  # files were named in reverse: IM{nz-k}; make files[k] the k-th slice
        files.sort(key=lambda f: float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]))
        return folder, files, array

    return make


@pytest.fixture
def edit():
    """Set header values of a DICOM file in place: edit(path, InstanceNumber=3)."""

    def _edit(path, **values):
        ds = pydicom.dcmread(path)
        for k, v in values.items():
            setattr(ds, k, v)
        ds.save_as(path)

    return _edit
