"""Lesion measures as a DICOM SR about a SEG (TID 1500 / TID 1411): read back with highdicom,
the SEG it refers to found and matching, both checked by dciodvfy; the CLI's --format sr."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from medviewer.core.errors import MedviewerError
from medviewer.core.measures import measure_segments
from medviewer.core.segments import default_segments
from medviewer.export.measures_sr import write_measures_sr


def test_each_segment_is_a_volumetric_group_referring_to_its_segment_in_the_seg(
        demo_volume, demo_labels, tmp_path, validate):
    import highdicom as hd

    values = [int(v) for v in np.unique(demo_labels.array) if v]
    segments = default_segments(values)
    out, seg_out = write_measures_sr(demo_volume, demo_labels, segments, tmp_path / "report.dcm")
    assert seg_out == str(tmp_path / "report-seg.dcm")
    validate(out)
    validate(seg_out)
    seg = hd.seg.segread(seg_out)
    sr = hd.sr.Comprehensive3DSR.from_dataset(pydicom.dcmread(out))
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == len(values)
    expected = {m.label: m for m in measure_segments(demo_volume, demo_labels, values)}
    labels_of_number = {}
    for group, segment in zip(groups, segments):
        ref = group.referenced_segment
        assert ref.referenced_sop_instance_uid == seg.SOPInstanceUID
        (number,) = ref.referenced_segment_numbers
        assert seg.get_segment_description(number).SegmentLabel == segment.name
        assert ref.source_series_for_segmentation.value == demo_volume.meta["series_instance_uid"]
        labels_of_number[number] = segment.label
        m = expected[segment.label]
        got = {}
        for x in group.get_measurements():
            key = x.name.meaning if x.derivation is None else f"{x.name.meaning} {x.derivation.meaning}"
            got[key] = (x.value, x.unit.value)
        assert got == {
            "Volume": (pytest.approx(m.volume_ml, abs=1e-3), "ml"),
            "Long axis": (pytest.approx(m.long_axis_mm, abs=0.01), "mm"),
            "Short axis": (pytest.approx(m.short_axis_mm, abs=0.01), "mm"),
            "Attenuation Coefficient Mean": (pytest.approx(m.mean, abs=0.01), "[hnsf'U]"),
            "Attenuation Coefficient Standard Deviation": (pytest.approx(m.std, abs=0.01), "[hnsf'U]"),
            "Attenuation Coefficient Minimum": (pytest.approx(m.minimum, abs=0.01), "[hnsf'U]"),
            "Attenuation Coefficient Maximum": (pytest.approx(m.maximum, abs=0.01), "[hnsf'U]"),
        }
    assert sorted(labels_of_number.values()) == values and len(set(s.name for s in segments)) == len(values)


def test_the_pair_is_refused_whole_when_either_file_exists(demo_volume, demo_labels, tmp_path):
    segments = default_segments([int(v) for v in np.unique(demo_labels.array) if v])
    (tmp_path / "report-seg.dcm").write_text("keep")
    with pytest.raises(MedviewerError, match="report-seg.dcm"):
        write_measures_sr(demo_volume, demo_labels, segments, tmp_path / "report.dcm")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report-seg.dcm"]
    assert (tmp_path / "report-seg.dcm").read_text() == "keep"
