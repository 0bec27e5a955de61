"""Lengths, bidirectionals and ellipses read back from DICOM SR: our own export round trips, the
TID 1410 groups (the region at the group's level) of our earlier exports are still read, and so
are SRs shaped as OHIF's length and elliptical ROI tools write them (dcmjs: the region under its
Length or Area measurement)."""

from __future__ import annotations

import copy

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume
from medviewer.export.measurements import write_measurements
from medviewer.io.measurements_sr import read_measurements_sr
from tests.export.test_measurements import ellipses_on, rulers_on


def test_our_sr_round_trips_to_the_same_rulers(demo_volume, tmp_path):
    rulers = rulers_on(demo_volume)
    out = write_measurements(demo_volume, rulers, tmp_path / "lengths.dcm")
    read = read_measurements_sr(out, demo_volume)
    assert read.warnings == [] and len(read.rulers) == 4
    for got, want in zip(read.rulers, rulers):
        assert np.allclose(got.start, want.start, atol=1e-3) and np.allclose(got.end, want.end, atol=1e-3)
        assert float(got.caption.split()[0]) == pytest.approx(np.linalg.norm(np.subtract(want.end, want.start)),
                                                              abs=0.051)


def _code(value, scheme, meaning):
    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, scheme, meaning
    return Sequence([c])


def ohif_style_sr(volume: Volume, k: int, cols_rows, length_mm: float, other_series_uid: str | None = None,
                  frame: int | None = None, ellipse: bool = False) -> Dataset:
    """A Comprehensive SR as OHIF's length tool exports it: a measurement group holding a NUM
    Length, which is inferred from an open SCOORD polyline selected from the image; with
    ``ellipse``, as its elliptical ROI does: an Area (``length_mm`` in mm2) inferred from an
    ELLIPSE."""
    image = Dataset()
    image.RelationshipType, image.ValueType = "SELECTED FROM", "IMAGE"
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ref.ReferencedSOPInstanceUID = other_series_uid or volume.source_sop_instance_uids[k]
    if frame is not None:
        ref.ReferencedFrameNumber = frame
    image.ReferencedSOPSequence = Sequence([ref])
    scoord = Dataset()
    scoord.RelationshipType, scoord.ValueType, scoord.GraphicType = "INFERRED FROM", "SCOORD", \
        "ELLIPSE" if ellipse else "POLYLINE"
    scoord.GraphicData = [float(v) for v in np.ravel(cols_rows)]
    scoord.ContentSequence = Sequence([image])
    num = Dataset()
    num.RelationshipType, num.ValueType = "CONTAINS", "NUM"
    num.ConceptNameCodeSequence = _code("42798000", "SCT", "Area") if ellipse else _code("410668003", "SCT", "Length")
    value = Dataset()
    value.NumericValue = f"{length_mm:.3f}"
    value.MeasurementUnitsCodeSequence = _code("mm2", "UCUM", "mm2") if ellipse else _code("mm", "UCUM", "mm")
    num.MeasuredValueSequence = Sequence([value])
    num.ContentSequence = Sequence([scoord])
    tracking = Dataset()
    tracking.RelationshipType, tracking.ValueType = "HAS OBS CONTEXT", "TEXT"
    tracking.ConceptNameCodeSequence = _code("112039", "DCM", "Tracking Identifier")
    tracking.TextValue = "Cornerstone3DTools@^0.1.0:Length"
    group = Dataset()
    group.RelationshipType, group.ValueType = "CONTAINS", "CONTAINER"
    group.ConceptNameCodeSequence = _code("125007", "DCM", "Measurement Group")
    group.ContentSequence = Sequence([tracking, num])
    measurements = Dataset()
    measurements.RelationshipType, measurements.ValueType = "CONTAINS", "CONTAINER"
    measurements.ConceptNameCodeSequence = _code("126010", "DCM", "Imaging Measurements")
    measurements.ContentSequence = Sequence([group])
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.33"
    ds.SOPInstanceUID = generate_uid()
    ds.Modality, ds.ValueType = "SR", "CONTAINER"
    ds.ConceptNameCodeSequence = _code("126000", "DCM", "Imaging Measurement Report")
    ds.ContentSequence = Sequence([measurements])
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    return ds


def test_an_ohif_length_is_read_onto_its_slice(demo_volume, tmp_path):
    k = demo_volume.shape[0] // 2
    cols_rows = np.array([[100.5, 120.5], [140.5, 150.5]])
    path = tmp_path / "ohif.dcm"
    pydicom.dcmwrite(path, ohif_style_sr(demo_volume, k, cols_rows, 37.31), enforce_file_format=True)
    (ruler,) = read_measurements_sr(path, demo_volume).rulers
    want = demo_volume.index_to_patient(np.array([[100, 120, k], [140, 150, k]], dtype=float))
    assert np.allclose([ruler.start, ruler.end], want, atol=1e-6)
    assert ruler.caption == "37.3 mm"   # the SR's own value (37.31), not the distance of the ends
    assert abs(np.linalg.norm(np.subtract(ruler.end, ruler.start)) - 37.25) > 1


def test_lengths_of_another_series_or_a_non_sr_are_refused_with_the_file_named(demo_volume, demo_series,
                                                                             tmp_path):
    path = tmp_path / "other.dcm"
    pydicom.dcmwrite(path, ohif_style_sr(demo_volume, 0, [[1, 1], [5, 5]], 5.7, other_series_uid=generate_uid()),
                     enforce_file_format=True)
    with pytest.raises(MedviewerError, match="no lengths, bidirectionals or ellipses on this series.*another series") as e:
        read_measurements_sr(path, demo_volume)
    assert str(path) in str(e.value)
    (tmp_path / "junk.dcm").write_bytes(b"not dicom")
    with pytest.raises(MedviewerError, match="junk.dcm"):
        read_measurements_sr(tmp_path / "junk.dcm", demo_volume)
    a_ct_slice = next(p for p in sorted(demo_series.rglob("*")) if p.is_file() and p.suffix in ("", ".dcm")
                      and pydicom.misc.is_dicom(p))
    with pytest.raises(MedviewerError, match="not a DICOM SR"):
        read_measurements_sr(a_ct_slice, demo_volume)


def test_a_length_on_a_frame_of_a_multiframe_image_lands_on_that_frames_slice(tmp_path):
    uid = generate_uid()
    frames = (3, 1, 2)   # slice k holds frame frames[k]
    volume = Volume(np.zeros((3, 20, 20), np.int16), spacing=(0.5, 0.5, 2.0), source_sop_instance_uids=(uid,) * 3,
                    source_frame_numbers=frames)
    path = tmp_path / "mf.dcm"
    pydicom.dcmwrite(path, ohif_style_sr(volume, 0, [[2.5, 3.5], [10.5, 3.5]], 4.0, frame=1), enforce_file_format=True)
    (ruler,) = read_measurements_sr(path, volume).rulers
    assert np.allclose(volume.patient_to_index(ruler.start), [2, 3, 1]) and ruler.caption == "4.0 mm"


def test_our_ellipses_round_trip_beside_the_lengths(demo_volume, tmp_path):
    rulers, ellipses = rulers_on(demo_volume)[:2], ellipses_on(demo_volume)
    out = write_measurements(demo_volume, rulers, tmp_path / "m.dcm", ellipses=ellipses)
    read = read_measurements_sr(out, demo_volume)
    assert read.warnings == [] and len(read.rulers) == 2 and len(read.ellipses) == 2
    for got, want in zip(read.ellipses, ellipses):
        assert np.allclose(got.ends, want.ends, atol=1e-3)


def test_our_earlier_planar_roi_groups_are_still_read(demo_volume, tmp_path):
    """Until December 2026 each length and ellipse was a TID 1410 group, its region at the group's
    level (not under its measurement): SRs written then still load."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from medviewer.export.sources import source_datasets
    from medviewer.export.sr import measurement_report_sr

    ruler, ellipse = rulers_on(demo_volume)[0], ellipses_on(demo_volume)[0]
    images = source_datasets(demo_volume)
    k = int(round(demo_volume.patient_to_index(ruler.start)[2]))
    source = hd.sr.SourceImageForRegion(referenced_sop_class_uid=images[k].SOPClassUID,
                                        referenced_sop_instance_uid=images[k].SOPInstanceUID)
    pixels = lambda points: demo_volume.patient_to_index(np.asarray(points))[:, :2] + 0.5  # noqa: E731
    groups = [hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=name),
        referenced_region=hd.sr.ImageRegion(graphic_type=kind, graphic_data=pixels(points), source_image=source),
        measurements=[hd.sr.Measurement(name=code, value=1.0, unit=unit)])
        for name, kind, points, code, unit in (
            ("length 1", hd.sr.GraphicTypeValues.POLYLINE, [ruler.start, ruler.end], codes.SCT.Length,
             codes.UCUM.Millimeter),
            ("ellipse 1", hd.sr.GraphicTypeValues.ELLIPSE, ellipse.ends, codes.SCT.Area,
             codes.UCUM.SquareMillimeter))]
    observer = hd.sr.ObservationContext(observer_person_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name="Doe^Jane")))
    out = tmp_path / "earlier.dcm"
    measurement_report_sr(groups, [images[k]], observer, description="medviewer measurements",
                          series_number=303).save_as(out)
    read = read_measurements_sr(out, demo_volume)
    assert read.warnings == [] and len(read.rulers) == 1 and len(read.ellipses) == 1
    assert np.allclose([read.rulers[0].start, read.rulers[0].end], [ruler.start, ruler.end], atol=1e-3)
    assert read.rulers[0].caption == "1.0 mm"   # the group's Length, as written
    assert np.allclose(read.ellipses[0].ends, ellipse.ends, atol=1e-3)


def test_an_ohif_ellipse_is_read_onto_its_slice(demo_volume, tmp_path):
    k = demo_volume.shape[0] // 3
    # the ends of its axes in pixels (corners at 0): major along the columns, minor along the rows
    ends = np.array([[90.5, 100.5], [130.5, 100.5], [110.5, 90.5], [110.5, 110.5]])
    path = tmp_path / "ohif-ellipse.dcm"
    pydicom.dcmwrite(path, ohif_style_sr(demo_volume, k, ends, 1230.0, ellipse=True), enforce_file_format=True)
    read = read_measurements_sr(path, demo_volume)
    assert read.rulers == [] and len(read.ellipses) == 1
    (e,) = read.ellipses
    want = demo_volume.index_to_patient(np.c_[ends - 0.5, np.full(4, k)])
    assert np.allclose(e.ends, want, atol=1e-6)
    assert np.allclose(e.center, demo_volume.index_to_patient([110, 100, k]))
    assert np.linalg.norm(e.axis_a) == pytest.approx(20 * demo_volume.spacing[0])


def test_bidirectionals_round_trip_and_an_ohif_shaped_one_is_read(demo_volume, tmp_path):
    from medviewer.core.document import Bidirectional

    k = demo_volume.shape[0] // 2
    normal = np.array([0.0, 0.0, 1.0])
    at = lambda i, j: demo_volume.index_to_patient([i, j, k])  # noqa: E731
    cross = Bidirectional.across(at(80, 100), at(140, 120), normal).with_end_moved(2, at(100, 130), normal)
    out = write_measurements(demo_volume, rulers_on(demo_volume)[:1], tmp_path / "b.dcm", bidirectionals=[cross])
    read = read_measurements_sr(out, demo_volume)
    assert len(read.rulers) == 1 and read.ellipses == [] and len(read.bidirectionals) == 1
    assert np.allclose(read.bidirectionals[0].ends, cross.ends, atol=1e-3)
    # as OHIF writes it: a measurement group with two NUMs, each inferred from its own polyline
    ds = ohif_style_sr(demo_volume, k, [[80.5, 100.5], [140.5, 100.5]], 60.0)
    group = ds.ContentSequence[0].ContentSequence[0]
    long_num = group.ContentSequence[1]
    long_num.ConceptNameCodeSequence = _code("103339001", "SCT", "Long Axis")
    short_num = copy.deepcopy(long_num)
    short_num.ConceptNameCodeSequence = _code("103340004", "SCT", "Short Axis")
    short_num.ContentSequence[0].GraphicData = [110.5, 90.5, 110.5, 115.5]
    group.ContentSequence.append(short_num)
    path = tmp_path / "ohif-bidirectional.dcm"
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    read = read_measurements_sr(path, demo_volume)
    assert read.rulers == [] and len(read.bidirectionals) == 1
    (b,) = read.bidirectionals
    assert np.allclose(b.ends, demo_volume.index_to_patient(np.array(
        [[80, 100, k], [140, 100, k], [110, 90, k], [110, 115, k]], dtype=float)), atol=1e-6)
    assert b.long_mm == pytest.approx(60 * demo_volume.spacing[0]) and b.short_mm == pytest.approx(25 * demo_volume.spacing[1])
