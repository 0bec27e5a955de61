import numpy as np
import pytest
import SimpleITK as sitk

from medviewer.core import MedviewerError, Volume


def _oblique_volume():
    theta = np.radians(30)
    direction = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    array = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    return Volume(array, spacing=(0.5, 0.75, 2.0), origin=(10.0, -20.0, 30.0), direction=direction)


def test_index_patient_round_trip_and_affine():
    v = _oblique_volume()
    ijk = np.array([[0, 0, 0], [5, 4, 3], [2.5, 1.0, 0.5]])
    mm = v.index_to_patient(ijk)
    assert np.allclose(mm[0], v.origin)
    assert np.allclose(v.patient_to_index(mm), ijk)
    homogeneous = np.c_[ijk, np.ones(3)] @ v.affine.T
    assert np.allclose(homogeneous[:, :3], mm)
    # one step along i moves spacing[0] mm along the first direction column
    assert np.allclose(v.index_to_patient([1, 0, 0]) - v.origin, 0.5 * v.direction[:, 0])


def test_voxel_order_is_zyx():
    v = _oblique_volume()
    mm = v.voxel_to_patient((3, 4, 5))  # z=3, y=4, x=5
    assert np.allclose(mm, v.index_to_patient((5, 4, 3)))
    assert tuple(v.patient_to_voxel(mm)) == (3, 4, 5)
    with pytest.raises(MedviewerError, match="outside"):
        v.patient_to_voxel(v.index_to_patient((50, 0, 0)))
    assert tuple(v.patient_to_voxel(v.index_to_patient((50, 0, 0)), clip=True)) == (0, 0, 5)


def test_sitk_bridge_keeps_geometry_and_voxels():
    v = _oblique_volume()
    image = v.to_sitk()
    assert image.GetSize() == (6, 5, 4)
    assert np.allclose(image.TransformContinuousIndexToPhysicalPoint((2.5, 1.0, 0.5)),
                       v.index_to_patient((2.5, 1.0, 0.5)))
    back = Volume.from_sitk(image)
    assert back.same_grid(v) and np.array_equal(back.array, v.array)


def test_crop_keeps_patient_positions():
    v = _oblique_volume().with_array(_oblique_volume().array, source_sop_instance_uids=list("abcd"))
    sub = v.crop((1, 2, 3), (3, 5, 6))
    assert sub.shape == (2, 3, 3)
    assert sub.array[0, 0, 0] == v.array[1, 2, 3]
    assert np.allclose(sub.voxel_to_patient((0, 0, 0)), v.voxel_to_patient((1, 2, 3)))
    assert sub.source_sop_instance_uids == ("b", "c")


def test_rejects_bad_geometry():
    with pytest.raises(MedviewerError, match="3D"):
        Volume(np.zeros((2, 2)))
    with pytest.raises(MedviewerError, match="positive"):
        Volume(np.zeros((2, 2, 2)), spacing=(1, 0, 1))
    with pytest.raises(MedviewerError, match="orthonormal"):
        Volume(np.zeros((2, 2, 2)), direction=[[1, 0.3, 0], [0, 1, 0], [0, 0, 1]])
    with pytest.raises(MedviewerError, match="does not fit"):
        _oblique_volume().with_array(np.zeros((1, 1, 1)))


def test_orientation_code_and_volume_ml():
    assert Volume(np.zeros((1, 1, 1))).orientation_code() == "LPS"
    flipped = Volume(np.zeros((1, 1, 1)), direction=np.diag([-1.0, -1.0, 1.0]))
    assert flipped.orientation_code() == "RAS"
    assert Volume(np.zeros((1, 1, 1)), spacing=(1, 2, 5)).voxel_volume_ml == pytest.approx(0.01)
    assert [Volume(np.zeros((1, 1, 1))).slice_plane(a) for a in range(3)] == ["sagittal", "coronal", "axial"]
    sagittal = Volume(np.zeros((1, 1, 1)), direction=np.array([[0, 0, 1], [1, 0, 0], [0, -1, 0]], float))  # PIL
    assert [sagittal.slice_plane(a) for a in range(3)] == ["coronal", "axial", "sagittal"]


def test_meta_is_read_only():
    v = Volume(np.zeros((1, 1, 1)), meta={"patient_id": "x"})
    with pytest.raises(TypeError):
        v.meta["patient_id"] = "y"


def test_slice_holding_names_the_index_axis_the_points_share():
    v = Volume(np.zeros((10, 20, 30), np.int16), spacing=(0.5, 0.8, 2.5), origin=(5.0, -3.0, 100.0))
    on = lambda i, j, k: v.index_to_patient([i, j, k])  # noqa: E731
    assert v.slice_holding([on(1, 2, 4), on(7, 9, 4)]) == (2, 4)
    assert v.slice_holding([on(1, 6, 2), on(7, 6, 8)]) == (1, 6)
    assert v.slice_holding([on(3, 6, 4), on(3, 9, 4)]) == (2, 4)     # two axes shared: the slice axis (z) first
    assert v.slice_holding([on(1, 2, 4), on(7, 9, 5)]) is None
    assert v.slice_holding([on(1, 2, 4), on(7, 9, 4.005)]) is None
    assert v.slice_holding([on(1, 2, 4), on(7, 9, 4.005)], tolerance=1e-2) == (2, 4)
