"""Settings file, server addresses, multipart parsing: no server needed."""

from __future__ import annotations

import json
import os

import pytest

from medviewer.core.errors import MedviewerError
from medviewer.core.settings import Settings, load_settings, save_settings, settings_path
from medviewer.pacs import StudyQuery, default_cache_dir, parse_server_url, resolve_server
from medviewer.pacs.dicomweb import split_multipart


def test_settings_default_round_trip_and_unknown_keys_kept(private_settings):
    assert settings_path() == str(private_settings)
    s = load_settings()
    assert s.servers == {} and s.ae_title == "MEDVIEWER" and not private_settings.exists()
    private_settings.parent.mkdir(parents=True)
    private_settings.write_text(json.dumps({"trusted_plugin_folders": ["/x"], "ae_title": "VIEWER1"}))
    s = load_settings()
    assert s.ae_title == "VIEWER1"
    s.servers["pacs"] = "dicom://PACS@host:104"
    save_settings(s)
    data = json.loads(private_settings.read_text())
    assert data["trusted_plugin_folders"] == ["/x"] and data["servers"] == {"pacs": "dicom://PACS@host:104"}
    assert [f for f in os.listdir(private_settings.parent)] == ["settings.json"]  # no temporary left
    assert load_settings().servers == {"pacs": "dicom://PACS@host:104"}


def test_settings_path_order(monkeypatch, tmp_path):
    monkeypatch.delenv("MEDVIEWER_CONFIG")
    monkeypatch.setenv("MEDVIEWER_CONFIG_DIR", str(tmp_path / "d"))
    assert settings_path() == str(tmp_path / "d" / "settings.json")
    monkeypatch.delenv("MEDVIEWER_CONFIG_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert settings_path() == str(tmp_path / "xdg" / "medviewer" / "settings.json")


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"), ("[1, 2]", "JSON object"), ('{"servers": ["a"]}', "map names to URLs"),
])
def test_bad_settings_file_is_one_clear_error(private_settings, text, message):
    private_settings.parent.mkdir(parents=True)
    private_settings.write_text(text)
    with pytest.raises(MedviewerError, match=message) as err:
        load_settings()
    assert str(private_settings) in str(err.value)


def test_server_addresses():
    web = parse_server_url("https://pacs.example.org:8443/dicom-web/")
    assert (web.kind, web.url, web.host, web.port) == ("dicomweb", "https://pacs.example.org:8443/dicom-web",
                                                      "pacs.example.org", 8443)
    dimse = parse_server_url("dicom://ORTHANC@10.0.0.5:4242")
    assert (dimse.kind, dimse.called_ae, dimse.host, dimse.port) == ("dimse", "ORTHANC", "10.0.0.5", 4242)
    assert parse_server_url("dicom://host").port == 104
    for bad in ("ftp://host/x", "dicom://AETITLEMUCHTOOLONGXX@h:1", "dicom://A@h:notaport", "http:///x"):
        with pytest.raises(MedviewerError):
            parse_server_url(bad)
    s = Settings(servers={"main": "dicom://MAIN@pacs:11112"})
    named = resolve_server("main", s)
    assert named.name == "main" and named.port == 11112 and named.label == 'PACS "main" (dicom://MAIN@pacs:11112)'
    with pytest.raises(MedviewerError, match="no saved server .*saved: main"):
        resolve_server("other", s)


def test_query_dates_checked():
    StudyQuery(study_date="20200101")
    StudyQuery(study_date="20200101-20201231")
    StudyQuery(study_date="-20201231")
    for bad in ("2020", "2020-01-01", "20200101-2020", "-"):
        with pytest.raises(MedviewerError, match="not a date"):
            StudyQuery(study_date=bad)


def test_cache_dir_from_settings(tmp_path):
    assert default_cache_dir(Settings(cache_dir=str(tmp_path))) == str(tmp_path / "pacs")
    assert default_cache_dir(Settings()).startswith(os.environ["XDG_CACHE_HOME"])


def test_split_multipart():
    body = (b"--abc\r\nContent-Type: application/dicom\r\n\r\nDICM\r\n\r\n--abcd\r\n"
            b"\r\n--abc\r\nContent-Type: application/dicom\r\n\r\nsecond\r\n--abc--\r\n")
    parts = split_multipart('multipart/related; type="application/dicom"; boundary=abc', body)
    assert parts == [b"DICM\r\n\r\n--abcd\r\n", b"second"]
    assert split_multipart("application/dicom", b"x") == [b"x"]
    with pytest.raises(ValueError):
        split_multipart("text/html", b"<html>")
