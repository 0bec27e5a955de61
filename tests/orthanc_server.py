"""A throw-away Orthanc for the PACS tests and the window's PACS dock (a pytest plugin, loaded by
tests/conftest.py; fixtures ``orthanc`` and ``sts_study``) (Debian packages orthanc and orthanc-dicomweb):
storage and index in a temporary folder, HTTP and DICOM ports chosen free at run time, loopback
only, no authentication, the DICOMweb plugin loaded; started once per session, stopped at the end.
Any system Orthanc service (ports 4242/8042) is left alone: nothing here uses those ports.
The uploaded study is STS_002 (48 CT images and its RTSTRUCT), through Orthanc's own REST API.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import pytest

from tests.conftest import require_data

ORTHANC_AET = "ORTHANC"
OUR_AET = "MEDVIEWER"
PLUGIN_GLOBS = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
                "/usr/lib/orthanc/libOrthancDicomWeb.so*",
                "/usr/lib/*/orthanc/libOrthancDicomWeb.so*")


def find_orthanc() -> tuple[str | None, str | None]:
    """(the Orthanc executable, the DICOMweb plugin), None where missing."""
    exe = shutil.which("Orthanc") or next((p for p in ("/usr/sbin/Orthanc", "/usr/bin/Orthanc")
                                           if os.access(p, os.X_OK)), None)
    plugin = next((p for g in PLUGIN_GLOBS for p in sorted(glob.glob(g))), None)
    return exe, plugin


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Orthanc:
    process: subprocess.Popen
    folder: str
    http_port: int
    dicom_port: int
    move_port: int  # where Orthanc sends C-MOVE results for our AE title

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.rest}/dicom-web"

    @property
    def dimse_url(self) -> str:
        return f"dicom://{ORTHANC_AET}@127.0.0.1:{self.dicom_port}"

    def get(self, path: str):
        with urllib.request.urlopen(self.rest + path, timeout=30) as r:
            return json.loads(r.read())

    def get_bytes(self, path: str) -> bytes:
        with urllib.request.urlopen(self.rest + path, timeout=30) as r:
            return r.read()

    def post(self, path: str, body):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.rest + path, data=data, method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def delete(self, path: str) -> None:
        req = urllib.request.Request(self.rest + path, method="DELETE")
        with urllib.request.urlopen(req, timeout=30):
            pass

    def upload(self, path: str) -> dict:
        with open(path, "rb") as fh:
            return self.post("/instances", fh.read())

    def log_tail(self, n: int = 30) -> str:
        try:
            with open(os.path.join(self.folder, "orthanc.log"), errors="replace") as fh:
                return "".join(fh.readlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_orthanc(folder: str, exe: str, plugin: str, timeout: float = 60.0) -> Orthanc:
    http_port, dicom_port = free_port(), free_port()
    move_port = free_port()
    while len({http_port, dicom_port, move_port}) < 3:
        dicom_port, move_port = free_port(), free_port()
    config = {
        "Name": "medviewer-tests",
        "StorageDirectory": os.path.join(folder, "storage"),
        "IndexDirectory": os.path.join(folder, "index"),
        "StorageCompression": False,  # files kept as received (the byte-identical check)
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": ORTHANC_AET,
        "DicomCheckCalledAet": True,  # a wrong called AE title is rejected (tested)
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "SslEnabled": False,
        # our AE as a known modality (C-GET, and C-MOVE to our storage SCP on move_port)
        "DicomModalities": {"medviewer": [OUR_AET, "127.0.0.1", move_port]},
        "DicomScpTimeout": 30,
        "Plugins": [plugin],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
        "SaveJobs": False,
        "ConcurrentJobs": 1,
        "StableAge": 1,
    }
    os.makedirs(folder, exist_ok=True)
    cfg = os.path.join(folder, "orthanc.json")
    with open(cfg, "w") as fh:
        json.dump(config, fh, indent=2)
    with open(os.path.join(folder, "orthanc.log"), "wb") as log:
        process = subprocess.Popen([exe, cfg], stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    server = Orthanc(process, folder, http_port, dicom_port, move_port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited with {process.returncode}:\n{server.log_tail()}")
        try:
            plugins = server.get("/plugins")
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.2)
            continue
        if "dicom-web" not in plugins:
            server.stop()
            raise RuntimeError(f"Orthanc started without the DICOMweb plugin {plugin}:\n{server.log_tail()}")
        return server
    server.stop()
    raise RuntimeError(f"Orthanc did not answer within {timeout:g} s:\n{server.log_tail()}")


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    exe, plugin = find_orthanc()
    if not exe or not plugin:
        reason = ("Orthanc is not installed (Debian packages orthanc and orthanc-dicomweb; "
                  "scripts/install.sh installs them)")
        if os.environ.get("MEDVIEWER_REQUIRE_DATA") == "1":
            pytest.fail(reason + " and MEDVIEWER_REQUIRE_DATA=1 (CI)")
        pytest.skip(reason)
    server = start_orthanc(str(tmp_path_factory.mktemp("orthanc")), exe, plugin)
    yield server
    server.stop()


@dataclass
class UploadedStudy:
    study_uid: str
    ct_series_uid: str
    rtstruct_path: str
    patient_id: str
    accession_number: str
    study_date: str
    sources: dict[str, str] = field(default_factory=dict)  # SOP Instance UID -> file uploaded


@pytest.fixture(scope="session")
def sts_study(orthanc) -> UploadedStudy:
    """STS_002 (48 CT images and its RTSTRUCT) uploaded through Orthanc's REST API."""
    import pydicom

    case = require_data("sts/STS_002")
    files = sorted(glob.glob(str(case / "image" / "*"))) + [str(case / "RS.dcm")]
    sources = {}
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        sources[str(ds.SOPInstanceUID)] = f
        answer = orthanc.upload(f)
        assert answer["Status"] in ("Success", "AlreadyStored"), answer
    ct = pydicom.dcmread(files[0], stop_before_pixels=True)
    return UploadedStudy(str(ct.StudyInstanceUID), str(ct.SeriesInstanceUID), str(case / "RS.dcm"),
                         str(ct.PatientID), str(ct.AccessionNumber), str(ct.StudyDate), sources)
