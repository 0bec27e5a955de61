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


def _sphere(radius_mm, direction=None):
    spacing = (0.98, 0.98, 3.27)
    zz, yy, xx = np.mgrid[:24, :40, :40]
    d2 = ((zz - 12) * spacing[2]) ** 2 + ((yy - 20) * spacing[1]) ** 2 + ((xx - 20) * spacing[0]) ** 2
    mask = (d2 <= radius_mm ** 2).astype(np.uint8)
    kw = {} if direction is None else {"direction": direction}
    return Volume(mask, spacing=spacing, origin=(10.0, -20.0, 30.0), **kw)


def _edge_counts(tri):
    edges = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
    keys = np.round(np.sort(edges.reshape(-1, 2, 3), axis=1).reshape(-1, 6), 4)
    return set(np.unique(keys, axis=0, return_counts=True)[1].tolist())


@pytest.mark.parametrize("radius", [15.0, 6.0, 4.0])
def test_the_smoothed_surface_keeps_a_small_lesions_volume(radius):
    """The smoothed STL (and the 3D view's surface) of a sphere on 3.27 mm slices: closed, facing
    outward, smooth, and enclosing its volume. Surface nets' own smoothing shrank it: radius 6 mm
    to 43% of its volume, 4 mm to 19%."""
    from medviewer.render.surface import smooth_surface

    volume = _sphere(radius)
    tri = smooth_surface(volume, 1)
    true_ml = 4 / 3 * np.pi * radius ** 3 / 1000
    assert enclosed_volume_ml(tri) == pytest.approx(true_ml, rel=0.05)
    assert _edge_counts(tri) == {2}
    if radius == 15.0:
        normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        radial = tri.mean(axis=1) - volume.voxel_to_patient((12, 20, 20))
        radial /= np.linalg.norm(radial, axis=1, keepdims=True)
        assert np.percentile((normals * radial).sum(axis=1), 10) > 0.95   # no slice steps (0.33 unsmoothed)
    # a left-handed grid (feet first): still outward
    flipped = _sphere(radius, direction=np.diag([1.0, 1.0, -1.0]))
    assert enclosed_volume_ml(smooth_surface(flipped, 1)) == pytest.approx(true_ml, rel=0.05)


def test_cli_stl_smooth_by_default_voxels_on_request_and_nothing_half_written(demo_series, tmp_path):
    import os

    from medviewer.cli import main

    mask = os.path.join(demo_series, "lesions.nii.gz")
    labels = read_image_labels(mask)
    assert main(["export", str(demo_series), "--seg", mask, "--out", str(tmp_path / "s.stl")]) == 0
    assert main(["export", str(demo_series), "--seg", mask, "--out", str(tmp_path / "v.stl"),
                 "--stl-surface", "voxels"]) == 0
    for label in (1, 2, 3):
        voxels_ml = (labels.array == label).sum() * labels.voxel_volume_ml
        smooth, exact = read_stl(tmp_path / f"s-{label}.stl"), read_stl(tmp_path / f"v-{label}.stl")
        assert enclosed_volume_ml(exact) == pytest.approx(voxels_ml, rel=1e-4)
        assert enclosed_volume_ml(smooth) == pytest.approx(voxels_ml, rel=0.03)
        assert not np.allclose(np.sort(smooth.reshape(-1)), np.sort(exact.reshape(-1)))  # not the voxel faces
    # one of the three files exists: refused before any is written
    (tmp_path / "again").mkdir()
    (tmp_path / "again" / "a-2.stl").write_bytes(b"keep")
    assert main(["export", str(demo_series), "--seg", mask, "--out", str(tmp_path / "again" / "a.stl")]) == 1
    assert sorted(os.listdir(tmp_path / "again")) == ["a-2.stl"]


def read_image_labels(path):
    from medviewer.io import read_image

    return read_image(path)


def test_an_empty_segment_has_an_empty_surface_and_no_vtk_warning(capfd):
    """The editor adds its label layer before any voxel is drawn: the 3D view's pipeline runs on
    nothing, and VTK's smoothing filter logged "No data to smooth!" to the terminal."""
    from medviewer.render.surface import smooth_surface, surface_nets

    empty = Volume(np.zeros((6, 6, 6), np.uint8))
    nets = surface_nets(empty, 1, 1)
    nets.Update()
    assert nets.GetOutputDataObject(0).GetNumberOfPolys() == 0
    assert smooth_surface(empty, 1).shape == (0, 3, 3)
    assert "No data" not in capfd.readouterr().err
