"""Series -> Volume: ordering, irregular geometry, multi-frame, compression, real scans."""

import os
import shutil

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from medviewer.core import MedviewerError
from medviewer.io import analyze_series, index_folder, load_volume


def sitk_read(folder):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def assert_same_geometry(volume, image, tol=1e-4):
    assert volume.size_xyz == image.GetSize()
    assert np.allclose(volume.origin, image.GetOrigin(), atol=tol)
    assert np.allclose(volume.spacing, image.GetSpacing(), atol=tol)
    assert np.allclose(volume.direction.ravel(), image.GetDirection(), atol=tol)


def test_order_follows_position_not_instance_number_or_name(small_series, edit):
    folder, files, array = small_series()
    rng = np.random.default_rng(0)
    for f, n in zip(files, rng.permutation(len(files)) + 1):  # scramble instance numbers
        edit(f, InstanceNumber=int(n))
    v = load_volume(folder)
    assert np.array_equal(v.array, array)
    assert v.spacing == pytest.approx((0.8, 0.9, 2.5))
    expected_uids = [pydicom.dcmread(f).SOPInstanceUID for f in files]
    assert list(v.source_sop_instance_uids) == expected_uids


def test_demo_study_loads_in_hu(demo_volume):
    import json

    assert demo_volume.shape == (80, 256, 256) and demo_volume.modality == "CT"
    lesions = json.load(open(os.path.join(demo_volume.meta["source_folder"], "lesions.json")))["lesions"]
    for lesion in lesions:
        z, y, x = demo_volume.patient_to_voxel(lesion["center_mm"])
        core = demo_volume.array[z, y - 2:y + 3, x - 2:x + 3]
        assert abs(core.mean() - lesion["hu"]) < 20  # rescale applied: HU, not stored values
    assert demo_volume.array.min() >= -1024


def test_missing_slice_is_reported_and_refused(small_series):
    folder, files, _ = small_series()
    os.remove(files[4])
    (series,) = index_folder(folder).image_series()
    problems = analyze_series(series).problems
    assert any("1 slice(s) missing" in p for p in problems)
    with pytest.raises(MedviewerError, match="missing"):
        load_volume(folder)


def test_unequal_spacing_is_refused(small_series, edit):
    folder, files, _ = small_series()
    ds = pydicom.dcmread(files[3])
    position = [float(v) for v in ds.ImagePositionPatient]
    edit(files[3], ImagePositionPatient=[position[0], position[1], position[2] + 0.9])
    with pytest.raises(MedviewerError, match="unequal slice spacing"):
        load_volume(folder)


def test_gantry_tilt_is_refused(small_series, edit):
    folder, files, _ = small_series()
    for k, f in enumerate(files):
        ds = pydicom.dcmread(f)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        edit(f, ImagePositionPatient=[x, y + 0.5 * k, z])  # slices shifted along y: sheared stack
    with pytest.raises(MedviewerError, match="gantry tilt"):
        load_volume(folder)


def test_duplicate_positions_are_refused(small_series, edit):
    folder, files, _ = small_series()
    shutil.copy(files[2], os.path.join(folder, "copy.dcm"))
    edit(os.path.join(folder, "copy.dcm"), SOPInstanceUID=pydicom.uid.generate_uid())
    with pytest.raises(MedviewerError, match="share a position"):
        load_volume(folder)


def test_enhanced_multiframe_ct_matches_single_frame(small_series, tmp_path):
    import highdicom as hd

    folder, files, array = small_series()
    datasets = [pydicom.dcmread(f) for f in files]
    multiframe = hd.legacy.LegacyConvertedEnhancedCTImage(
        datasets, series_instance_uid=hd.UID(), series_number=9, sop_instance_uid=hd.UID(), instance_number=1)
    path = tmp_path / "enhanced.dcm"
    multiframe.save_as(path)
    single = load_volume(folder)
    v = load_volume(path)
    assert np.array_equal(v.array, single.array)
    assert v.same_grid(single)
    assert v.source_sop_instance_uids == (multiframe.SOPInstanceUID,) * len(files)
    assert sorted(v.source_frame_numbers) == list(range(1, len(files) + 1))


@pytest.mark.data
def test_jpeg2000_series_equals_simpleitk(shared_data):
    folder = shared_data / "compressed-ct" / "example_ct_dicom"
    v = load_volume(folder)
    image = sitk_read(folder)
    assert v.shape == (20, 512, 512)
    assert np.array_equal(v.array, sitk.GetArrayFromImage(image))
    assert_same_geometry(v, image)
    assert v.array.min() == -1024  # HU (rescale applied)


@pytest.mark.data
def test_all_sts_cases_match_simpleitk_geometry(sts_cases):
    # 44 since STS_025..STS_044 joined (the data README); every one read as SimpleITK reads it
    assert len(sts_cases) == 44
    assert [c.name for c in sts_cases] == [f"STS_{n:03d}" for n in range(1, 45)]
    for case in sts_cases:
        v = load_volume(case / "image")
        image = sitk_read(case / "image")
        assert_same_geometry(v, image)
        assert 47 <= v.shape[0] <= 114
        assert np.array_equal(v.array, sitk.GetArrayFromImage(image)), case.name


@pytest.mark.data
def test_lung_study_two_series(shared_data):
    folder = shared_data / "lung-pet-ct-dx" / "A0001"
    index = index_folder(folder)
    series = index.image_series()
    assert len(series) == 2
    assert len(index.ignored) == 20 and not index.skipped  # the boxes' XML files
    with pytest.raises(MedviewerError, match="2 image series"):
        load_volume(folder)
    v = load_volume(folder, series=3)
    assert v.meta["series_number"] == 3 and v.shape == (64, 512, 512)
    assert v.spacing == pytest.approx((0.8418, 0.8418, 5.0), abs=1e-3)
