"""Measurements (lengths, bidirectionals, elliptical ROIs) as CSV and as a DICOM SR (TID 1500) on
the demo's DICOM series: read back with highdicom, checked by dciodvfy. (tests/interop reads them
with OHIF's own reader.)"""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from medviewer.core.document import Bidirectional, Ellipse, Ruler
from medviewer.core.errors import MedviewerError
from medviewer.core.roi_stats import ellipse_stats
from medviewer.core.volume import Volume
from medviewer.export.measurements import lengths, measurements_csv, write_measurements
from tests.export.conftest import dciodvfy


def rulers_on(volume: Volume) -> list[Ruler]:
    """An axial, a coronal, a sagittal and an oblique ruler through the volume's middle voxel."""
    mid = (np.asarray(volume.size_xyz) - 1) // 2
    at = lambda di, dj, dk: volume.index_to_patient(mid + np.array([di, dj, dk], dtype=float))  # noqa: E731
    return [Ruler(at(-20, -10, 0), at(15, 20, 0), "axial"), Ruler(at(-20, 0, -5), at(10, 0, 6), "coronal"),
            Ruler(at(0, -15, -4), at(0, 12, 3), "sagittal"), Ruler(at(-5, -5, -2), at(5, 6, 3), "oblique")]


def test_each_ruler_is_reported_with_its_plane_slice_and_length(demo_volume):
    rulers = rulers_on(demo_volume)
    found = lengths(demo_volume, rulers)
    assert [m.plane for m in found] == ["axial", "coronal", "sagittal", "oblique"]
    mid = (np.asarray(demo_volume.size_xyz) - 1) // 2
    assert [m.slice_index for m in found] == [mid[2], mid[1], mid[0], None]
    assert found[0].sop_instance_uid == demo_volume.source_sop_instance_uids[mid[2]]
    assert [m.sop_instance_uid for m in found[1:]] == [None] * 3
    for m, r in zip(found, rulers):
        assert m.length_mm == pytest.approx(np.linalg.norm(np.subtract(r.end, r.start)))
    rows = list(csv.DictReader(io.StringIO(measurements_csv(demo_volume, rulers))))
    assert [r["slice"] for r in rows] == [str(mid[2] + 1), str(mid[1] + 1), str(mid[0] + 1), ""]
    assert float(rows[0]["length_mm"]) == pytest.approx(found[0].length_mm, abs=0.005)
    assert [float(rows[1][k]) for k in ("end_x_mm", "end_y_mm", "end_z_mm")] == pytest.approx(rulers[1].end, abs=0.005)


def test_the_sr_holds_each_length_on_its_image_or_in_its_frame_and_dciodvfy_accepts_it(demo_volume, tmp_path):
    import highdicom as hd
    import pydicom

    rulers = rulers_on(demo_volume)
    rulers[1] = Ruler(rulers[1].start, rulers[1].end, rulers[1].caption, "target lesion 2")
    out = write_measurements(demo_volume, rulers, tmp_path / "lengths.dcm", observer_name="Doe^Jane")
    errors, _ = dciodvfy(out)
    assert errors == []
    ds = pydicom.dcmread(out)
    assert ds.Modality == "SR" and ds.StudyInstanceUID == demo_volume.meta["study_instance_uid"]
    sr = hd.sr.Comprehensive3DSR.from_dataset(ds)
    groups = sr.content.get_image_measurement_groups()
    assert len(groups) == 4
    regions = []
    for group, ruler in zip(groups, rulers):
        assert group.tracking_identifier == "Cornerstone3DTools@^0.1.0:Length"   # OHIF's length tool
        (m,) = group.get_measurements()
        assert (m.name.value, m.name.scheme_designator, m.unit.value) == ("410668003", "SCT", "mm")
        assert m.value == pytest.approx(np.linalg.norm(np.subtract(ruler.end, ruler.start)), abs=0.01)
        (region,) = m.referenced_coordinates   # the length is inferred from its line
        regions.append(region)
        comments = [i.TextValue for i in group[0].ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "121106"]
        assert comments == ([ruler.label] if ruler.label else [])   # the label: the group's comment
    axial = regions[0]   # on its slice's image, in that image's pixels (pixel centres at +0.5)
    assert axial.graphic_type.value == "POLYLINE"
    k = int(round(demo_volume.patient_to_index(rulers[0].start)[2]))
    (source,) = axial.ContentSequence   # the image it lies on
    assert source.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == demo_volume.source_sop_instance_uids[k]
    expected = np.array([demo_volume.patient_to_index(p)[:2] for p in (rulers[0].start, rulers[0].end)]) + 0.5
    assert np.allclose(np.asarray(axial.value, dtype=float), expected, atol=1e-3)
    for region, ruler in zip(regions[1:], rulers[1:]):   # across slices: in mm, in the frame of reference
        assert region.frame_of_reference_uid == demo_volume.frame_of_reference_uid
        assert np.allclose(np.asarray(region.value, dtype=float).reshape(-1, 3), [ruler.start, ruler.end], atol=1e-3)
    observer = [i for i in ds.ContentSequence if i.ConceptNameCodeSequence[0].CodeMeaning == "Person Observer Name"]
    assert observer and str(observer[0].PersonName) == "Doe^Jane"


def test_what_cannot_be_written_is_refused_with_the_file_named_and_nothing_written(demo_volume, tmp_path):
    rulers = rulers_on(demo_volume)[:1]
    with pytest.raises(MedviewerError, match="no measurements") as e:
        write_measurements(demo_volume, [], tmp_path / "a.csv")
    assert str(tmp_path / "a.csv") in str(e.value)
    bare = Volume(demo_volume.array, demo_volume.spacing, demo_volume.origin, demo_volume.direction)
    with pytest.raises(MedviewerError, match="not read from DICOM"):
        write_measurements(bare, rulers, tmp_path / "b.dcm")
    assert write_measurements(bare, rulers, tmp_path / "b.csv")   # a table needs no DICOM
    with pytest.raises(MedviewerError, match=r"\.csv or \.dcm"):
        write_measurements(demo_volume, rulers, tmp_path / "c.txt")
    (tmp_path / "d.csv").write_text("keep")
    with pytest.raises(MedviewerError):
        write_measurements(demo_volume, rulers, tmp_path / "d.csv")
    assert (tmp_path / "d.csv").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.csv", "d.csv"]


def ellipses_on(volume: Volume) -> list[Ellipse]:
    """An axial ellipse (tilted in its plane) and a coronal circle around the middle voxel."""
    mid = (np.asarray(volume.size_xyz) - 1) // 2
    centre = volume.index_to_patient(mid)
    return [Ellipse(centre, (12.0, 5.0, 0.0), (-2.5, 6.0, 0.0)), Ellipse(centre, (8.0, 0.0, 0.0), (0.0, 0.0, 8.0))]


def test_ellipses_are_rows_after_the_lengths_with_their_area_and_hu(demo_volume):
    rulers, ellipses = rulers_on(demo_volume)[:1], ellipses_on(demo_volume)
    rows = list(csv.DictReader(io.StringIO(measurements_csv(demo_volume, rulers, ellipses))))
    assert [(r["measurement"], r["kind"]) for r in rows] == [("1", "length"), ("2", "ellipse"), ("3", "ellipse")]
    assert rows[0]["area_mm2"] == rows[0]["mean"] == ""
    for row, e in zip(rows[1:], ellipses):
        st = ellipse_stats(demo_volume, e)
        assert float(row["area_mm2"]) == pytest.approx(st.area_mm2, abs=0.005) and row["length_mm"] == ""
        assert float(row["mean"]) == pytest.approx(st.mean, abs=0.005) and int(row["pixels"]) == st.pixel_count > 0
        assert (row["unit"], row["plane"], int(row["slice"])) == ("HU", st.plane, st.slice_index + 1)
        assert [float(row[f"center_{c}_mm"]) for c in "xyz"] == pytest.approx(e.center, abs=0.005)
    assert rows[1]["sop_instance_uid"] == demo_volume.source_sop_instance_uids[ellipse_stats(demo_volume, ellipses[0]).slice_index]
    assert rows[2]["plane"] == "coronal" and rows[2]["sop_instance_uid"] == ""


def test_the_sr_holds_each_ellipse_with_its_area_and_hu_and_dciodvfy_accepts_it(demo_volume, tmp_path):
    import highdicom as hd
    import pydicom

    ellipses = ellipses_on(demo_volume)
    out = write_measurements(demo_volume, [], tmp_path / "rois.dcm", ellipses=ellipses, observer_name="Doe^Jane")
    errors, _ = dciodvfy(out)
    assert errors == []
    sr = hd.sr.Comprehensive3DSR.from_dataset(pydicom.dcmread(out))
    groups = sr.content.get_image_measurement_groups()
    assert len(groups) == 2
    regions = []
    for group, e in zip(groups, ellipses):
        assert group.tracking_identifier == "Cornerstone3DTools@^0.1.0:EllipticalROI"
        st = ellipse_stats(demo_volume, e)
        found = {(m.name.meaning, m.derivation.meaning if m.derivation else None): m for m in group.get_measurements()}
        area = found[("Area", None)]
        assert area.value == pytest.approx(st.area_mm2, abs=0.01) and area.unit.value == "mm2"
        assert found[("Attenuation Coefficient", "Mean")].value == pytest.approx(st.mean, abs=0.01)
        assert found[("Attenuation Coefficient", "Maximum")].value == pytest.approx(st.maximum)
        assert found[("Attenuation Coefficient", "Mean")].unit.value == "[hnsf'U]"
        (region,) = area.referenced_coordinates   # the area is inferred from the ellipse
        regions.append(region)
    axial, coronal = regions
    assert axial.graphic_type.value == "ELLIPSE"   # the ends of its axes in its image's pixels, the major first
    expected = demo_volume.patient_to_index(ellipses[0].ends)[:, :2] + 0.5
    assert np.allclose(np.asarray(axial.value, dtype=float), expected, atol=1e-3)
    assert coronal.graphic_type.value == "ELLIPSE" and coronal.frame_of_reference_uid == demo_volume.frame_of_reference_uid
    assert np.allclose(np.asarray(coronal.value, dtype=float).reshape(-1, 3), ellipses[1].ends, atol=1e-3)


def test_an_oblique_ellipse_is_placed_in_the_frame_and_one_outside_is_refused(demo_volume, tmp_path):
    import highdicom as hd
    import pydicom

    good = ellipses_on(demo_volume)[0]
    tilted = Ellipse(good.center, (5.0, 0.0, 4.0), (0.0, 5.0, 0.0))
    rows = list(csv.DictReader(io.StringIO(measurements_csv(demo_volume, [], [tilted]))))
    assert (rows[0]["plane"], rows[0]["slice"], rows[0]["sop_instance_uid"]) == ("oblique", "", "")
    out = write_measurements(demo_volume, [], tmp_path / "oblique.dcm", ellipses=[tilted])
    assert dciodvfy(out)[0] == []
    (group,) = hd.sr.Comprehensive3DSR.from_dataset(pydicom.dcmread(out)).content.get_image_measurement_groups()
    (region,) = group.get_measurements()[0].referenced_coordinates
    assert region.graphic_type.value == "ELLIPSE"
    assert np.allclose(np.asarray(region.value, dtype=float).reshape(-1, 3), tilted.ends, atol=1e-3)
    outside = Ellipse(demo_volume.index_to_patient([10, 10, demo_volume.shape[0] + 5]), (5.0, 0, 0), (0, 5.0, 0))
    for name in ("x.csv", "x.dcm"):
        with pytest.raises(MedviewerError, match="ellipse 2: the ellipse lies outside the image") as e:
            write_measurements(demo_volume, [], tmp_path / name, ellipses=[good, outside])
        assert name in str(e.value)
    assert [p.name for p in tmp_path.iterdir()] == ["oblique.dcm"]


def test_a_bidirectional_is_a_row_and_an_sr_group_with_both_axes_on_their_lines(demo_volume, tmp_path):
    import highdicom as hd
    import pydicom

    mid = (np.asarray(demo_volume.size_xyz) - 1) // 2
    at = lambda di, dj: demo_volume.index_to_patient(mid + np.array([di, dj, 0], dtype=float))  # noqa: E731
    cross = Bidirectional.across(at(-20, -5), at(20, 5), np.array([0.0, 0.0, 1.0])).with_end_moved(
        3, at(0, 0) + [3.0, -12.0, 0.0], np.array([0.0, 0.0, 1.0]))
    rulers = rulers_on(demo_volume)[:1]
    rows = list(csv.DictReader(io.StringIO(measurements_csv(demo_volume, rulers, [], [cross]))))
    assert [(r["measurement"], r["kind"]) for r in rows] == [("1", "length"), ("2", "bidirectional")]
    row = rows[1]
    assert float(row["length_mm"]) == pytest.approx(cross.long_mm, abs=0.005)
    assert float(row["short_axis_mm"]) == pytest.approx(cross.short_mm, abs=0.005)
    assert (row["plane"], int(row["slice"])) == ("axial", mid[2] + 1)
    assert row["sop_instance_uid"] == demo_volume.source_sop_instance_uids[mid[2]]
    assert [float(row[f"short_end_{c}_mm"]) for c in "xyz"] == pytest.approx(cross.short_end, abs=0.005)
    out = write_measurements(demo_volume, [], tmp_path / "cross.dcm", bidirectionals=[cross])
    assert dciodvfy(out)[0] == []
    (group,) = hd.sr.Comprehensive3DSR.from_dataset(pydicom.dcmread(out)).content.get_image_measurement_groups()
    assert group.tracking_identifier == "Cornerstone3DTools@^0.1.0:Bidirectional"
    found = {m.name.value: m for m in group.get_measurements()}
    assert found["103339001"].name.meaning == "Long Axis"   # as dcmjs spells it: OHIF looks for it so
    assert found["103339001"].value == pytest.approx(cross.long_mm, abs=0.001)
    assert found["103340004"].value == pytest.approx(cross.short_mm, abs=0.001)
    # each axis inferred from its own line, in its image's pixels
    ds = pydicom.dcmread(out)

    def walk(items):
        for i in items:
            yield i
            yield from walk(i.get("ContentSequence", []))
    (num,) = [i for i in walk(ds.ContentSequence) if i.get("ValueType") == "NUM"
              and i.ConceptNameCodeSequence[0].CodeValue == "103340004"]
    short = [i for i in num.ContentSequence if i.ValueType == "SCOORD"]
    assert len(short) == 1 and short[0].RelationshipType == "INFERRED FROM"
    want = demo_volume.patient_to_index(np.array([cross.short_start, cross.short_end]))[:, :2] + 0.5
    assert np.allclose(np.reshape(short[0].GraphicData, (2, 2)), want, atol=1e-3)
