"""Fixtures of the PACS tests. The Orthanc server (``orthanc``, ``sts_study``) lives in
tests/orthanc_server.py, shared with the window tests."""

from __future__ import annotations

import socket

import pytest

from tests.orthanc_server import free_port


@pytest.fixture(autouse=True)
def private_settings(tmp_path, monkeypatch):
    """Never the user's settings file: each test gets its own."""
    path = tmp_path / "config" / "settings.json"
    monkeypatch.setenv("MEDVIEWER_CONFIG", str(path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return path


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections (the kernel's backlog) and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield s.getsockname()[1]
    s.close()


@pytest.fixture
def closed_port() -> int:
    return free_port()  # nothing listens there once the probe socket is closed
