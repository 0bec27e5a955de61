"""Fixtures for the batch tests: a cohort folder of real STS series (file links, no copies) with
one broken series, one Dask LocalCluster (2 worker processes) per module. (The Orthanc fixtures
come from tests/orthanc_server.py, loaded by tests/conftest.py.)"""

from __future__ import annotations

import os
import pathlib

import pytest

from tests.conftest import require_data

HERE = pathlib.Path(__file__).resolve().parent
GOOD_CASES = ("STS_002", "STS_003", "STS_008", "STS_019")  # the smallest series (47 to 51 slices)
BROKEN_CASE = "STS_012"  # linked without its 21st slice: "1 slice(s) missing", cannot be loaded


def _link_series(src: pathlib.Path, dst: pathlib.Path, skip: int | None = None) -> None:
    dst.mkdir(parents=True)
    for n, f in enumerate(sorted(src.iterdir())):
        if n != skip:
            os.symlink(f, dst / f.name)


@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> pathlib.Path:
    """cohort/<case>/image/ for four good STS cases, and cohort/broken/image/ (a slice missing)."""
    sts = require_data("sts")
    root = tmp_path_factory.mktemp("cohort")
    for case in GOOD_CASES:
        _link_series(sts / case / "image", root / case / "image")
    _link_series(sts / BROKEN_CASE / "image", root / "broken" / "image", skip=20)
    return root


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    yield cluster
    cluster.close()


@pytest.fixture(autouse=True)
def private_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVIEWER_CONFIG", str(tmp_path / "config" / "settings.json"))
    monkeypatch.setenv("MEDVIEWER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("MEDVIEWER_PLUGIN_PATH", str(HERE))  # threshold_plugin/: a test segmentation plugin
