"""masks.ball: the voxels of a box within so many mm of a voxel, on an anisotropic grid."""

import numpy as np

from medviewer.segmentation.masks import ball


def test_a_ball_is_measured_in_mm_on_its_box():
    spacing = np.array([5.0, 1.0, 0.5])  # z, y, x
    box = (slice(2, 7), slice(10, 31), slice(0, 50))
    b = ball(box, (4, 20, 20), spacing, 5.0)
    assert b.shape == (5, 21, 50)
    zz, yy, xx = np.meshgrid(np.arange(2, 7), np.arange(10, 31), np.arange(0, 50), indexing="ij")
    expected = ((zz - 4) * 5.0) ** 2 + ((yy - 20) * 1.0) ** 2 + ((xx - 20) * 0.5) ** 2 <= 25.0
    assert np.array_equal(b, expected)
    assert b[2, 10, 20] and b[1, 10, 20] and not b[0, 10, 20]  # one slice (5 mm) up: on its edge; two: out
    assert b[2, 10, 30] and not b[2, 10, 31]  # 10 voxels of 0.5 mm across x
    # a centre outside the box: only the part of the ball inside it
    assert ball(box, (4, 8, 20), spacing, 3.0).sum() == np.count_nonzero(
        ((zz - 4) * 5.0) ** 2 + ((yy - 8) * 1.0) ** 2 + ((xx - 20) * 0.5) ** 2 <= 9.0)
    assert not ball(box, (4, 0, 20), spacing, 3.0).any()
