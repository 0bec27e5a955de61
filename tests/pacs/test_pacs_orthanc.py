"""The PACS client against a live Orthanc (see conftest.py): query, retrieve (byte-identical over
DICOMweb, the same datasets over DIMSE), cancel, send a SEG and a measurement SR back, clear
messages on failures."""

from __future__ import annotations

import glob
import os
import warnings

import pydicom
import pytest

from medviewer.core.errors import MedviewerError
from medviewer.core.settings import Settings
from medviewer.pacs import StudyQuery, open_server

pytestmark = pytest.mark.data
PROTOCOLS = ("dicomweb", "dimse")


def client_for(orthanc, protocol, **kw):
    url = orthanc.dicomweb_url if protocol == "dicomweb" else orthanc.dimse_url
    return open_server(url, settings=Settings(), **kw)


def dataset_bytes(data: bytes) -> bytes:
    """A Part 10 file's bytes after its file meta group."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import _read_file_meta_info, read_preamble

    fp = DicomBytesIO(data)
    read_preamble(fp, False)
    _read_file_meta_info(fp)
    return data[fp.tell():]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_query_finds_the_uploaded_study(orthanc, sts_study, protocol):
    client = client_for(orthanc, protocol)
    client.echo()
    for query in (StudyQuery(patient_id=sts_study.patient_id),
                  StudyQuery(patient_id="STS_00*", modality="CT"),
                  StudyQuery(accession_number=sts_study.accession_number),
                  StudyQuery(study_date=sts_study.study_date),
                  StudyQuery(study_date=f"{sts_study.study_date[:4]}0101-{sts_study.study_date[:4]}1231",
                             modality="CT")):
        found = client.find_studies(query)
        assert [s.study_instance_uid for s in found] == [sts_study.study_uid], query
        study = found[0]
        assert study.patient_id == "STS_002" and study.study_date == sts_study.study_date
        assert set(study.modalities) == {"CT", "RTSTRUCT"}
        assert study.instance_count == 49 and study.series_count == 2
    for query in (StudyQuery(patient_id="NOBODY"), StudyQuery(modality="MR"),
                  StudyQuery(study_date="19000101-19001231"), StudyQuery(accession_number="0")):
        assert client.find_studies(query) == [], query
    series = client.find_series(sts_study.study_uid)
    assert [(s.modality, s.instance_count) for s in series] == [("RTSTRUCT", 1), ("CT", 48)]
    assert series[1].series_instance_uid == sts_study.ct_series_uid


def test_dicomweb_retrieve_is_byte_identical_and_indexed(orthanc, sts_study, tmp_path):
    client = client_for(orthanc, "dicomweb")
    calls = []
    result = client.retrieve_study(sts_study.study_uid, tmp_path, progress=lambda d, t: calls.append((d, t)))
    assert result.folder == str(tmp_path / sts_study.study_uid)
    files = sorted(glob.glob(os.path.join(result.folder, "*")))
    assert len(files) == 49 and result.received == 49 and result.already == 0
    for f in files:
        sop_uid = os.path.basename(f)[:-len(".dcm")]
        with open(f, "rb") as a, open(sts_study.sources[sop_uid], "rb") as b:
            assert a.read() == b.read(), f"{f} differs from what was uploaded"
    assert calls[0] == (0, 49) and calls[-1] == (49, 49)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    ct = [s for s in result.index.image_series()]
    assert len(ct) == 1 and ct[0].slice_count == 48 and ct[0].series_instance_uid == sts_study.ct_series_uid
    assert not result.index.skipped
    again = client.retrieve_study(sts_study.study_uid, tmp_path)  # the cache is used
    assert again.already == 49 and again.received == 0


@pytest.mark.parametrize("method", ("C-GET", "C-MOVE"))
def test_dimse_retrieve_gives_the_same_datasets(orthanc, sts_study, tmp_path, method):
    """The file meta is ours (it does not travel over DIMSE), and Orthanc's DICOM toolkit
    re-encodes sequence lengths, so the check is: same transfer syntax, equal data elements, same
    pixel bytes."""
    client = client_for(orthanc, "dimse")
    if method == "C-MOVE":
        client.move_port = orthanc.move_port
    calls = []
    result = client.retrieve_study(sts_study.study_uid, tmp_path, progress=lambda d, t: calls.append((d, t)))
    files = sorted(glob.glob(os.path.join(result.folder, "*")))
    assert len(files) == 49 and result.received == 49 and result.failed == 0
    assert calls[-1] == (49, 49)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # long values in the source files
        for f in files:
            got = pydicom.dcmread(f)
            source = pydicom.dcmread(sts_study.sources[os.path.basename(f)[:-4]])
            assert got.file_meta.TransferSyntaxUID == source.file_meta.TransferSyntaxUID
            assert got.file_meta.MediaStorageSOPInstanceUID == source.SOPInstanceUID
            assert got == source, f"{f}: the data elements differ from what was uploaded"
            if "PixelData" in source:
                assert got.PixelData == source.PixelData
    assert len(result.index.image_series()) == 1 and result.index.image_series()[0].slice_count == 48


def test_a_pacs_that_does_not_know_our_ae_title(orthanc, sts_study, tmp_path):
    """Orthanc accepts the association, then aborts it at the first request of an AE title it
    does not list in DicomModalities."""
    client = open_server(orthanc.dimse_url, settings=Settings(ae_title="STRANGER", move_port=orthanc.move_port))
    with pytest.raises(MedviewerError) as err:
        client.retrieve_study(sts_study.study_uid, tmp_path)
    text = one_line(err.value, orthanc.dimse_url)
    assert "(C-FIND) failed: the server aborted the association (does it know our AE title STRANGER?)" in text


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_cancel_stops_the_retrieval_and_leaves_only_whole_files(orthanc, sts_study, tmp_path, protocol):
    client = client_for(orthanc, protocol)
    seen = []
    with pytest.raises(MedviewerError, match="retrieval cancelled"):
        client.retrieve_study(sts_study.study_uid, tmp_path, progress=lambda d, t: seen.append(d),
                              cancelled=lambda: len(seen) > 5)
    folder = tmp_path / sts_study.study_uid
    files = [f for f in os.listdir(folder)]
    assert 0 < len(files) < 49
    assert all(f.endswith(".dcm") for f in files), files
    for f in files:
        pydicom.dcmread(folder / f)  # each one complete
    result = client.retrieve_study(sts_study.study_uid, tmp_path)  # resumes
    assert result.instance_count == 49


def _seg_over(series_folder, out):
    from medviewer.export.seg import write_seg
    from medviewer.io import load_volume
    from medviewer.io.annotations import read_rtstruct_layer

    volume = load_volume(series_folder)
    rtstruct = next(f for f in glob.glob(os.path.join(series_folder, "*.dcm"))
                    if pydicom.dcmread(f, stop_before_pixels=True).Modality == "RTSTRUCT")
    layer = read_rtstruct_layer(rtstruct, volume)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return write_seg(volume, layer.labels, layer.segments, out)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_seg_sent_back_appears_in_orthanc_referencing_its_series(orthanc, sts_study, tmp_path, protocol, request):
    """Retrieve, make a SEG of the GTV (from the study's RTSTRUCT) on the retrieved CT, send it."""
    client = client_for(orthanc, protocol)
    result = client.retrieve_study(sts_study.study_uid, tmp_path / "cache")
    volume_folder = result.folder
    seg_path = _seg_over(volume_folder, tmp_path / f"gtv-{protocol}.dcm")
    seg = pydicom.dcmread(seg_path)
    before = {s.series_instance_uid for s in client.find_series(sts_study.study_uid)}
    progress = []
    sent = client.send([seg_path], progress=lambda d, t: progress.append((d, t)))
    assert sent.sent == [str(seg_path)] and sent.failed == [] and progress[-1] == (1, 1)
    series = client.find_series(sts_study.study_uid)
    new = [s for s in series if s.series_instance_uid not in before]
    assert [(s.modality, s.series_instance_uid) for s in new] == [("SEG", str(seg.SeriesInstanceUID))]
    # what Orthanc holds, read through its own REST API
    found = orthanc.post("/tools/lookup", str(seg.SOPInstanceUID).encode())
    assert len(found) == 1 and found[0]["Type"] == "Instance"
    request.addfinalizer(lambda: orthanc.delete(f"/instances/{found[0]['ID']}"))  # the study as uploaded
    stored = pydicom.dcmread(pydicom.filebase.DicomBytesIO(orthanc.get_bytes(f"/instances/{found[0]['ID']}/file")))
    assert stored.Modality == "SEG" and stored.StudyInstanceUID == sts_study.study_uid
    assert stored.ReferencedSeriesSequence[0].SeriesInstanceUID == sts_study.ct_series_uid
    referenced = {str(i.ReferencedSOPInstanceUID) for i in stored.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced and referenced <= set(sts_study.sources)
    with open(seg_path, "rb") as fh:
        assert dataset_bytes(fh.read()) == dataset_bytes(orthanc.get_bytes(f"/instances/{found[0]['ID']}/file"))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_measurement_report_sent_back_is_stored_whole_and_loads_from_the_pacs(orthanc, sts_study, tmp_path,
                                                                                protocol, request):
    """The measure tool's SR (a labelled length and an ellipse on the retrieved CT) sent to
    Orthanc: stored byte for byte as an SR of the study, and loaded back from the PACS's copy
    with its measurements and label."""
    import numpy as np

    from medviewer.core.document import Ellipse, Ruler
    from medviewer.export.measurements import write_measurements
    from medviewer.io import load_volume
    from medviewer.io.measurements_sr import read_measurements_sr

    client = client_for(orthanc, protocol)
    volume = load_volume(client.retrieve_study(sts_study.study_uid, tmp_path / "cache").folder)
    mid = (np.asarray(volume.size_xyz) - 1) // 2
    at = lambda di, dj: volume.index_to_patient(mid + np.array([di, dj, 0], dtype=float))  # noqa: E731
    ruler = Ruler(at(-20, -10), at(15, 20), "", "target lesion 1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        sr_path = write_measurements(volume, [ruler], tmp_path / f"measurements-{protocol}.dcm",
                                     ellipses=[Ellipse(at(0, 0), (8.0, 0.0, 0.0), (0.0, 5.0, 0.0))])
    sr = pydicom.dcmread(sr_path)
    sent = client.send([sr_path])
    assert sent.sent == [str(sr_path)] and sent.failed == []
    found = orthanc.post("/tools/lookup", str(sr.SOPInstanceUID).encode())
    assert len(found) == 1
    request.addfinalizer(lambda: orthanc.delete(f"/instances/{found[0]['ID']}"))  # the study as uploaded
    stored = orthanc.get_bytes(f"/instances/{found[0]['ID']}/file")
    with open(sr_path, "rb") as fh:
        assert dataset_bytes(fh.read()) == dataset_bytes(stored)
    (tmp_path / "from-pacs.dcm").write_bytes(stored)
    read = read_measurements_sr(tmp_path / "from-pacs.dcm", volume)
    assert [r.label for r in read.rulers] == ["target lesion 1"] and len(read.ellipses) == 1
    assert np.allclose([read.rulers[0].start, read.rulers[0].end], [ruler.start, ruler.end], atol=1e-3)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_send_reports_files_that_are_not_dicom(orthanc, sts_study, tmp_path, protocol):
    junk = tmp_path / "notes.txt"
    junk.write_text("not DICOM")
    result = client_for(orthanc, protocol).send([junk])
    assert result.sent == [] and len(result.failed) == 1 and result.failed[0][0] == str(junk)


# ---- servers that are down, refuse, or do not answer -----------------------------------------

def one_line(exc: MedviewerError, url: str) -> str:
    text = str(exc)
    assert "\n" not in text and url in text, text
    return text


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_connection_refused(closed_port, protocol):
    url = (f"http://127.0.0.1:{closed_port}/dicom-web" if protocol == "dicomweb"
           else f"dicom://ORTHANC@127.0.0.1:{closed_port}")
    with pytest.raises(MedviewerError) as err:
        open_server(url, settings=Settings()).find_studies(StudyQuery())
    assert "connection refused" in one_line(err.value, url)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_timeout(silent_server, protocol):
    url = (f"http://127.0.0.1:{silent_server}/dicom-web" if protocol == "dicomweb"
           else f"dicom://ORTHANC@127.0.0.1:{silent_server}")
    with pytest.raises(MedviewerError) as err:
        open_server(url, settings=Settings(), timeout=1).find_studies(StudyQuery())
    assert "timeout" in one_line(err.value, url)


def test_association_rejected_for_a_wrong_called_ae_title(orthanc):
    url = orthanc.dimse_url.replace("ORTHANC@", "NOTORTHANC@")
    with pytest.raises(MedviewerError) as err:
        open_server(url, settings=Settings()).find_studies(StudyQuery())
    text = one_line(err.value, url)
    # Orthanc rejects the association; under load the rejection can arrive as an abort.
    assert ("association rejected" in text or "association aborted" in text) and "called AE title" in text


def test_http_404_for_a_wrong_dicomweb_path(orthanc):
    url = orthanc.rest + "/not-dicom-web"
    with pytest.raises(MedviewerError) as err:
        open_server(url, settings=Settings()).find_studies(StudyQuery())
    assert "HTTP 404" in one_line(err.value, url)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unknown_study(orthanc, sts_study, tmp_path, protocol):
    with pytest.raises(MedviewerError, match="no study 1.2.3.4"):
        client_for(orthanc, protocol).retrieve_study("1.2.3.4", tmp_path)


def test_http_401_and_basic_authentication(tmp_path):
    """A DICOMweb server that wants a password: the user is told so; the URL's user:password is
    sent as basic authentication and never shown."""
    import base64
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            ok = self.headers.get("Authorization") == "Basic " + base64.b64encode(b"alice:s3cret").decode()
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"[]")

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/dicom-web"
        with pytest.raises(MedviewerError) as err:
            open_server(url, settings=Settings()).find_studies(StudyQuery())
        assert "HTTP 401 authentication required" in one_line(err.value, url)
        with_password = url.replace("http://", "http://alice:s3cret@")
        with pytest.raises(MedviewerError) as err:
            open_server(with_password.replace("s3cret", "wrong"), settings=Settings()).find_studies(StudyQuery())
        assert "HTTP 401" in str(err.value) and "wrong" not in str(err.value) and url in str(err.value)
        assert open_server(with_password, settings=Settings()).find_studies(StudyQuery()) == []
        assert seen[0] is None and seen[-1].startswith("Basic ")
    finally:
        httpd.shutdown()
        httpd.server_close()


def _cut_short(client, method: str, page: int) -> list:
    """Make ``client``'s QIDO ``method`` answer at most ``page`` items a call, as servers with a
    result limit do; returns the list of the offsets it is called with."""
    search = getattr(client._client, method)
    calls = []

    def cut(**kw):
        calls.append(kw.get("offset"))
        return search(**kw)[:page]

    setattr(client._client, method, cut)
    return calls


def test_dicomweb_retrieve_pages_through_a_server_that_cuts_answers_short(orthanc, sts_study, tmp_path):
    client = client_for(orthanc, "dicomweb")
    calls = _cut_short(client, "search_for_instances", 20)
    n = client.find_studies(StudyQuery(study_instance_uid=sts_study.study_uid))[0].instance_count
    assert n == 49
    result = client.retrieve_study(sts_study.study_uid, tmp_path)
    assert result.received == n and calls == [None] + list(range(20, n, 20))
    assert set(sts_study.sources) <= {f[:-4] for f in os.listdir(result.folder)}


def test_dicomweb_study_query_pages_through_a_server_that_cuts_answers_short(orthanc, sts_study):
    client = client_for(orthanc, "dicomweb")
    everything = client.find_studies(StudyQuery())
    assert sts_study.study_uid in {s.study_instance_uid for s in everything}
    calls = _cut_short(client, "search_for_studies", 1)
    assert client.find_studies(StudyQuery()) == everything
    n = len(everything)
    assert calls == [None] + list(range(1, n + 1))  # the last page is empty: the end
    calls.clear()
    first = client.find_studies(StudyQuery(), limit=1)
    assert len(first) == 1 and first[0] in everything and calls == [None]


def test_dicomweb_study_query_keeps_the_first_page_of_a_server_that_refuses_offsets(orthanc, sts_study):
    import requests

    client = client_for(orthanc, "dicomweb")
    everything = client.find_studies(StudyQuery())
    search = client._client.search_for_studies

    def no_offsets(**kw):
        if kw.get("offset"):
            raise requests.HTTPError("400 Client Error: offset not supported")
        return search(**kw)

    client._client.search_for_studies = no_offsets
    assert client.find_studies(StudyQuery()) == everything
    client._client.search_for_studies = lambda **kw: no_offsets(offset=1)  # refuses everything
    with pytest.raises(MedviewerError, match="study query"):
        client.find_studies(StudyQuery())


# ---- compressed files (JPEG 2000), and files a PACS refuses ------------------------------------

def _j2k_copies(tmp_path, tag: str, n: int = 3) -> list[str]:
    """The first n STS_002 slices as a new study, JPEG 2000 lossless."""
    from pydicom.uid import JPEG2000Lossless, generate_uid

    from tests.conftest import require_data

    study, series = generate_uid(), generate_uid()
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for f in sorted(glob.glob(str(require_data("sts/STS_002/image") / "*")))[:n]:
            ds = pydicom.dcmread(f)
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
            ds.SOPInstanceUID = generate_uid()
            ds.PatientID = f"MV-J2K-{tag}"
            ds.compress(JPEG2000Lossless)
            path = tmp_path / f"{tag}-{len(out)}.dcm"
            ds.save_as(path, enforce_file_format=True)
            out.append(str(path))
    return out


@pytest.mark.parametrize("send_with", PROTOCOLS)
def test_jpeg2000_files_sent_and_retrieved_without_transcoding(orthanc, tmp_path, send_with):
    files = _j2k_copies(tmp_path, send_with)
    sent = client_for(orthanc, send_with).send(files)
    assert sent.sent == files and not sent.failed
    study_uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    by_sop = {str(pydicom.dcmread(f).SOPInstanceUID): f for f in files}
    web = client_for(orthanc, "dicomweb").retrieve_study(study_uid, tmp_path / "web")
    get = client_for(orthanc, "dimse").retrieve_study(study_uid, tmp_path / "get")
    assert web.received == get.received == 3
    for sop, f in by_sop.items():
        source = pydicom.dcmread(f)
        over_web = open(os.path.join(web.folder, sop + ".dcm"), "rb").read()
        if send_with == "dicomweb":  # STOW-RS: Orthanc keeps the file as it came
            assert over_web == open(f, "rb").read()
        for got in (pydicom.dcmread(pydicom.filebase.DicomBytesIO(over_web)),
                    pydicom.dcmread(os.path.join(get.folder, sop + ".dcm"))):
            assert got.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"
            assert got.PixelData == source.PixelData


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_files_the_pacs_refuses_are_reported_and_the_rest_sent(orthanc, tmp_path, protocol):
    """The compressed-ct example's files lack Study/Series/SOP Instance UIDs: Orthanc refuses them."""
    from tests.conftest import require_data

    bad = sorted(glob.glob(str(require_data("compressed-ct/example_ct_dicom") / "*")))[0]
    good = _j2k_copies(tmp_path, f"ok-{protocol}", n=1)[0]
    result = client_for(orthanc, protocol).send([bad, good])
    assert result.sent == [good]
    assert [p for p, _ in result.failed] == [bad]
    assert any(w in result.failed[0][1] for w in ("refused", "not stored", "cannot be sent")), result.failed
