"""`medviewer segment` on the real lung tumour: the mask lies in the annotated boxes, and its DICOM
SEG passes dciodvfy and reads back identical through highdicom."""

import re
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT


@pytest.mark.data
def test_click_on_lung_tumour_box_centre(lung_series, tmp_path, validate):
    import highdicom as hd

    from medviewer.io import load_volume, read_image
    from medviewer.io.annotations import read_voc_boxes

    volume = load_volume(lung_series)
    boxes = sorted(read_voc_boxes(lung_series.parent / "boxes", volume), key=lambda b: b.slice_index)
    assert len(boxes) == 11
    middle = boxes[len(boxes) // 2]
    centre = volume.voxel_to_patient((middle.slice_index, (middle.ymin + middle.ymax) / 2,
                                      (middle.xmin + middle.xmax) / 2))
    point = "--point=" + ",".join(f"{v:.2f}" for v in centre)
    nifti, seg = tmp_path / "tumour.nii.gz", tmp_path / "tumour.dcm"
    for out in (nifti, seg):
        # The default engine, "auto", picks the learned one here (tests/segmentation/
        # test_engine_choice.py); the classical one is checked on this tumour in test_classical.py.
        r = subprocess.run([sys.executable, "-m", "medviewer", "segment", str(lung_series), point, "--out", str(out)],
                           capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert r.returncode == 0, r.stderr
        # the time of the segmentation itself and, apart, that of loading the engine (a fresh process)
        assert re.search(r" mL \(\d+ voxels\), segmented in \d+\.\d\d s by the learned engine \(auto\), "
                         r"after \d+\.\d s loading it; wrote ", r.stdout), r.stdout
        assert "warning" not in r.stdout  # within the scan, not leaked
    mask = read_image(nifti)
    assert mask.same_grid(volume)
    m = mask.array > 0
    inside = np.zeros_like(m)
    for b in boxes:
        inside[b.slice_index, int(b.ymin):int(b.ymax) + 1, int(b.xmin):int(b.xmax) + 1] = True
    annotated = [b.slice_index for b in boxes]
    assert m[annotated].sum() > 0.6 * m.sum()  # the bulk lies on the annotated slices ...
    assert (m & inside)[annotated].sum() > 0.9 * m[annotated].sum()  # ... inside the boxes

    # segment rewrites its output (click-by-click refinement), and says so
    r = subprocess.run([sys.executable, "-m", "medviewer", "segment", str(lung_series), point, "--out", str(nifti)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0 and f"replaced {nifti}" in r.stdout
    assert validate(seg) is not None  # 0 dciodvfy errors
    assert hd.seg.segread(seg).SegmentSequence[0].SegmentAlgorithmName == "medviewer click-to-segment (learned)"
    sop_uids = list(volume.source_sop_instance_uids)
    read = hd.seg.segread(seg).get_pixels_by_source_instance(sop_uids, ignore_spatial_locations=True)
    assert np.array_equal(read[..., 0] > 0, m)


def test_run_writes_a_plugin_label_map_as_seg(demo_series, tmp_path, validate):
    """`medviewer run PLUGIN ... --out result.dcm` writes the label map as a DICOM SEG."""
    import highdicom as hd

    from medviewer.io import load_volume, read_image

    outs = {}
    for name in ("mask.nii.gz", "mask.dcm"):
        outs[name] = tmp_path / name
        r = subprocess.run([sys.executable, "-m", "medviewer", "run", "click-segment", str(demo_series),
                            "--point=-60,0,-75", "--param", "engine=classical", "--out", str(outs[name]), "--quiet"],
                           capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert r.returncode == 0, r.stderr
    validate(outs["mask.dcm"])
    volume = load_volume(demo_series)
    seg = hd.seg.segread(outs["mask.dcm"])
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "SEMIAUTOMATIC"  # clicks guided it
    # the engine that outlined it, named as `segment` and the window name it
    assert seg.SegmentSequence[0].SegmentAlgorithmName == "medviewer click-to-segment (classical)"
    read = seg.get_pixels_by_source_instance(list(volume.source_sop_instance_uids), ignore_spatial_locations=True)
    assert np.array_equal(read[..., 0] > 0, read_image(outs["mask.nii.gz"]).array > 0)


def test_segment_warns_when_the_classical_region_leaked_as_far_as_it_looks(demo_series, tmp_path):
    """A click in the phantom's body (not a lesion): the classical engine's region grows to the
    edge of what it looks at, and `medviewer segment` says so beside the volume."""
    from medviewer.io import load_volume

    volume = load_volume(demo_series)
    centre = volume.voxel_to_patient(np.array(volume.shape) // 2)
    r = subprocess.run([sys.executable, "-m", "medviewer", "segment", str(demo_series),
                        "--point=" + ",".join(f"{v:.2f}" for v in centre), "--engine", "classical",
                        "--out", str(tmp_path / "body.nrrd")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "warning: the mask grew as far as the classical engine looks" in r.stdout
    assert (tmp_path / "body.nrrd").is_file()


def test_segment_by_default_outlines_the_demo_liver_lesion_with_the_classical_engine(demo_series, tmp_path):
    """The default engine, "auto", gives the demo's hypodense liver lesion (bounded on every side)
    to the classical engine, which outlines it (the learned one spilled 245 mL into the liver), and
    says so. The lesion lies under the phantom's lung, with lung in 10% of the shell around it, as
    the dark centre of a lung mass has ("deep", engine_choice): so the network is asked too, and
    its spill, which does not lie in the lung, is not taken."""
    from medviewer.io import read_image

    out = tmp_path / "liver.nii.gz"
    r = subprocess.run([sys.executable, "-m", "medviewer", "segment", str(demo_series), "--point=-60,0,-75",
                        "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "by the classical engine (auto" in r.stdout
    assert "the classical engine outlined it: a sharply bounded lesion, closed off within 50 mm" in r.stdout
    assert "warning" not in r.stdout and "leaked" not in r.stdout
    truth = read_image(demo_series / "lesions.nii.gz").array == 3
    mask = read_image(out).array > 0
    assert 2 * (mask & truth).sum() / (mask.sum() + truth.sum()) > 0.95
