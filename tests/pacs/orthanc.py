"""Start a throw-away Orthanc (Debian packages orthanc, orthanc-dicomweb) for the PACS tests:
storage and index in a temporary folder, HTTP and DICOM ports chosen free at run time, loopback
only, no authentication, the DICOMweb plugin loaded."""

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
from dataclasses import dataclass

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

    def upload(self, path: str) -> dict:
        with open(path, "rb") as fh:
            req = urllib.request.Request(self.rest + "/instances", data=fh.read(), method="POST",
                                         headers={"Content-Type": "application/dicom"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

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
    while dicom_port == http_port:
        dicom_port = free_port()
    config = {
        "Name": "medviewer-tests",
        "StorageDirectory": os.path.join(folder, "storage"),
        "IndexDirectory": os.path.join(folder, "index"),
        "StorageCompression": False,
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": ORTHANC_AET,
        "DicomCheckCalledAet": True,  # a wrong called AE title is rejected (tested)
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "SslEnabled": False,
        "DicomModalities": {"medviewer": [OUR_AET, "127.0.0.1", free_port()]},
        "DicomScpTimeout": 30,
        "Plugins": [plugin],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
        "SaveJobs": False,
        "ConcurrentJobs": 1,
        "HttpThreadsCount": 10,
        "StableAge": 1,
    }
    os.makedirs(folder, exist_ok=True)
    cfg = os.path.join(folder, "orthanc.json")
    with open(cfg, "w") as fh:
        json.dump(config, fh, indent=2)
    log = open(os.path.join(folder, "orthanc.log"), "wb")
    process = subprocess.Popen([exe, cfg], stdout=log, stderr=subprocess.STDOUT, cwd=folder,
                               start_new_session=True)
    log.close()
    server = Orthanc(process, folder, http_port, dicom_port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited with {process.returncode}:\n{server.log_tail()}")
        try:
            plugins = server.get("/plugins")
            if "dicom-web" not in plugins:
                server.stop()
                raise RuntimeError(f"Orthanc started without the DICOMweb plugin {plugin}:\n{server.log_tail()}")
            return server
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"Orthanc did not answer within {timeout:g} s:\n{server.log_tail()}")
