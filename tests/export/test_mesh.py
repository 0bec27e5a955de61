import numpy as np
import pytest

from medviewer.core.volume import Volume
from medviewer.export.mesh import enclosed_volume_ml, read_stl, voxel_surface, write_stl


def test_single_voxel_is_a_closed_outward_box():
    v = Volume(np.zeros((3, 3, 3), np.uint8), spacing=(0.5, 2.0, 3.0), origin=(10, 20, 30))
    mask = np.zeros((3, 3, 3), bool)
    mask[1, 1, 1] = True
    tri = voxel_surface(mask, v)
    assert tri.shape == (12, 3, 3)
    assert enclosed_volume_ml(tri) == pytest.approx(0.5 * 2 * 3 / 1000)
    np.testing.assert_allclose(tri.reshape(-1, 3).min(axis=0), [10.25, 21.0, 31.5])


def test_stl_of_demo_lesion_encloses_its_voxel_volume(demo_labels, tmp_path):
    out = write_stl(demo_labels, 1, tmp_path / "lesion1.stl")
    tri = read_stl(out)
    voxels = (demo_labels.array == 1).sum() * demo_labels.voxel_volume_ml
    assert enclosed_volume_ml(tri) == pytest.approx(voxels, rel=1e-4)
    # every edge is shared by exactly two triangles: watertight
    edges = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
    keys = np.round(np.sort(edges.reshape(-1, 6).reshape(-1, 2, 3), axis=1).reshape(-1, 6), 3)
    _, counts = np.unique(keys, axis=0, return_counts=True)
    assert set(counts.tolist()) <= {2, 4}  # 4 where two voxels touch along an edge only


def test_cli_stl_one_file_per_segment(demo_series, tmp_path):
    import os

    from medviewer.cli import main

    mask = os.path.join(demo_series, "lesions.nii.gz")
    assert main(["export", str(demo_series), "--seg", mask, "--format", "stl", "--out", str(tmp_path / "m.stl")]) == 0
    assert sorted(os.listdir(tmp_path)) == ["m-1.stl", "m-2.stl", "m-3.stl"]
