"""`medviewer pacs ...` as a user runs it: real processes against the test Orthanc."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def medviewer(*args):
    return subprocess.run([sys.executable, "-m", "medviewer", "pacs", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def test_saved_servers_add_list_remove(private_settings):
    r = medviewer("servers", "add", "main", "dicom://MAIN@pacs.example.org:11112")
    assert r.returncode == 0, r.stderr
    assert json.loads(private_settings.read_text())["servers"] == {"main": "dicom://MAIN@pacs.example.org:11112"}
    r = medviewer("servers", "add", "main", "http://other:8042/dicom-web")
    assert r.returncode == 1 and "--force" in r.stderr
    assert medviewer("servers", "add", "web", "http://other:8042/dicom-web").returncode == 0
    r = medviewer("servers", "list")
    assert r.stdout.splitlines() == ["main  dicom://MAIN@pacs.example.org:11112", "web  http://other:8042/dicom-web"]
    r = medviewer("servers", "add", "bad", "ftp://x")
    assert r.returncode == 1 and r.stderr.startswith("medviewer: ftp://x: not a server address")
    assert medviewer("servers", "remove", "main").returncode == 0
    assert medviewer("servers", "list").stdout.splitlines() == ["web  http://other:8042/dicom-web"]
    r = medviewer("servers", "remove", "main")
    assert r.returncode == 1 and "no saved server" in r.stderr


@pytest.mark.data
def test_query_retrieve_send_from_the_command_line(orthanc, sts_study, tmp_path):
    assert medviewer("servers", "add", "test-orthanc", orthanc.dimse_url).returncode == 0
    r = medviewer("query", "test-orthanc", "--patient", "STS_002", "--modality", "CT", "--date",
                  f"{sts_study.study_date}-", "--series")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith('1 study on PACS "test-orthanc"')
    assert sts_study.study_uid in r.stdout and "CT/RTSTRUCT" in r.stdout and "49 instances" in r.stdout
    assert f"series 3 CT 'IBSI_1_STS_002_CT_image' 48 instances  {sts_study.ct_series_uid}" in r.stdout
    r = medviewer("query", orthanc.dicomweb_url, "--accession", "nothing-like-it")
    assert r.returncode == 0 and r.stdout.startswith("no studies match")

    r = medviewer("retrieve", orthanc.dicomweb_url, sts_study.study_uid, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    folder = tmp_path / "out" / sts_study.study_uid
    assert f"retrieved 49 instances into {folder}" in r.stdout
    assert "'IBSI_1_STS_002_CT_image' (CT, 48 slices)" in r.stdout
    assert len(os.listdir(folder)) == 49

    r = medviewer("retrieve", "test-orthanc", sts_study.study_uid, "--out", tmp_path / "moved",
                  "--move-port", orthanc.move_port)
    assert r.returncode == 0, r.stderr
    assert len(os.listdir(tmp_path / "moved" / sts_study.study_uid)) == 49

    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\0" * 200)
    r = medviewer("send", "test-orthanc", junk, folder / f"{next(iter(sts_study.sources))}.dcm")
    assert r.returncode == 1 and "sent 1 of 2 files" in r.stdout
    assert f"not sent: {junk}: not a DICOM file" in r.stderr


def test_clear_one_line_errors(closed_port):
    r = medviewer("query", f"dicom://PACS@127.0.0.1:{closed_port}", "--patient", "X")
    assert r.returncode == 1
    assert r.stderr == (f"medviewer: PACS dicom://PACS@127.0.0.1:{closed_port}: connection refused "
                        "(is the server running, and is the port right?)\n")
    r = medviewer("query", "http://127.0.0.1:1/dicom-web", "--date", "2020-01-01")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "not a date" in r.stderr
    r = medviewer("retrieve", "nosuchserver", "1.2.3")
    assert r.returncode == 1 and r.stderr.startswith("medviewer: nosuchserver: no saved server")
