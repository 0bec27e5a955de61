"""RTSTRUCT both ways with plastimatch (Debian's package), whose rasteriser SlicerRT uses to turn
an RTSTRUCT's planar contours into a label map in 3D Slicer:

- an expert's RTSTRUCT gives the same voxels through plastimatch as through our import;
- our RTSTRUCTs (an expert's tumour re-exported, the demo's three lesions) give back through
  plastimatch every voxel we wrote, in its structure."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

from medviewer.core.segments import Segment
from medviewer.export.rtstruct import write_rtstruct
from tests.conftest import require_data


def plastimatch_structures(rtstruct, series_folder, out) -> dict[str, np.ndarray]:
    """plastimatch's label map of each structure (by file name), on the referenced CT's grid."""
    from medviewer.io import read_image

    exe = shutil.which("plastimatch")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("plastimatch is not installed, and CI=true requires it (scripts/test-system-packages.txt)")
        pytest.skip("plastimatch is not installed")
    run = subprocess.run([exe, "convert", "--input", str(rtstruct), "--referenced-ct", str(series_folder),
                          "--output-prefix", str(out), "--prefix-format", "nrrd"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return {p.stem: read_image(str(p)) for p in sorted(out.glob("*.nrrd"))}


@pytest.mark.data
def test_an_expert_contour_fills_the_same_voxels_in_plastimatch_and_here_both_ways(tmp_path):
    from medviewer.io import load_volume
    from medviewer.io.annotations import read_rtstruct

    case = require_data("sts/STS_023")
    volume = load_volume(str(case / "image"))
    ours = read_rtstruct(case / "RS.dcm", volume).array > 0
    (theirs,) = plastimatch_structures(case / "RS.dcm", case / "image", tmp_path / "expert").values()
    assert theirs.same_grid(volume)
    np.testing.assert_array_equal(theirs.array > 0, ours)

    out = write_rtstruct(volume, volume.with_array(ours.astype(np.uint8)), [Segment(1, "GTV")],
                         tmp_path / "ours.dcm")
    back = plastimatch_structures(out, case / "image", tmp_path / "ours")
    np.testing.assert_array_equal(back["GTV"].array > 0, ours)


def test_each_demo_lesion_comes_back_from_plastimatch(demo_lesions, demo_series, demo_volume, tmp_path):
    labels, _ = demo_lesions
    segments = [Segment(n, f"lesion_{n}", (255, 40 * n, 0)) for n in (1, 2, 3)]   # plastimatch's file names
    out = write_rtstruct(demo_volume, demo_volume.with_array(labels), segments, tmp_path / "lesions.dcm")
    back = plastimatch_structures(out, demo_series, tmp_path / "plastimatch")
    assert sorted(back) == ["lesion_1", "lesion_2", "lesion_3"]
    for s in segments:
        np.testing.assert_array_equal(back[s.name].array > 0, labels == s.label)
