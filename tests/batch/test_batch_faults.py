"""`medviewer batch` telling the truth when things go wrong, against a real Dask cluster (the
module's LocalCluster of 2 worker processes, or a scheduler and 2 workers started here as
processes, so that the scheduler can be killed) and the real Orthanc: a changed series or
changed plugin code is computed again; a dead scheduler leaves one-line failures that agree with
the disk; summary.csv lists every study in OUT; an unreachable PACS stops the batch before the
first study; long-lived workers run this run's plugin code; every attempt is logged."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from medviewer.batch import jobs_from_folder, run_batch
from medviewer.batch.core import read_summary
from medviewer.cli import main
from medviewer.plugins.api import Manifest
from medviewer.plugins.registry import get_manifest
from tests.batch.conftest import _link_series

pytestmark = pytest.mark.data
HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def _rows(out):
    return {r["study"]: r for r in read_summary(str(out / "summary.csv"))}


def _small_cohort(cohort, root, cases=("STS_002", "STS_008")):
    """root/<case>/image: links to the session cohort's series (no copies)."""
    for case in cases:
        _link_series(cohort / case / "image", root / case / "image")
    return root


def _wait_for(check, timeout=120.0, what="a condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


# ---- 1: the done-marker matches the series ---------------------------------------------------------
def _rewrite_series(src: pathlib.Path, dst: pathlib.Path, shift_hu: int) -> str:
    """A copy of a series under a new Series Instance UID (new SOP Instance UIDs), its values
    shifted by ``shift_hu`` (through the rescale intercept); returns the new series UID."""
    import pydicom
    from pydicom.uid import generate_uid

    series_uid = generate_uid()
    dst.mkdir(parents=True)
    for f in sorted(src.iterdir()):
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.RescaleIntercept = float(ds.get("RescaleIntercept", 0)) + shift_hu
        ds.save_as(dst / f.name)
    return series_uid


def test_a_rerun_recomputes_a_study_whose_series_changed(cohort, dask_cluster, tmp_path):
    manifest = get_manifest("test-threshold")
    params = manifest.resolve_params({"hu": "100"})
    case = tmp_path / "in" / "STS_002" / "image"
    _link_series(cohort / "STS_002" / "image", case)
    out = tmp_path / "out"
    first = run_batch(jobs_from_folder(str(tmp_path / "in"), manifest, params, str(out)),
                      str(out), scheduler=dask_cluster.scheduler_address, progress=False)
    assert (first.done, first.skipped) == (1, 0)
    study = first.rows[0]["study"]
    old_uid = first.rows[0]["series_uid"]
    import nibabel

    before = int((nibabel.load(out / study / "result.nii.gz").get_fdata() > 0).sum())
    # the same folder name, patient and series number; a new series (UID and pixels)
    shutil.rmtree(case)
    new_uid = _rewrite_series(cohort / "STS_002" / "image", case, shift_hu=300)
    again = run_batch(jobs_from_folder(str(tmp_path / "in"), manifest, params, str(out)),
                      str(out), scheduler=dask_cluster.scheduler_address, progress=False)
    assert (again.done, again.skipped) == (1, 0), again.rows
    assert again.rows[0]["study"] == study and again.rows[0]["series_uid"] == new_uid != old_uid
    marker = json.loads((out / study / "done.json").read_text())
    assert marker["settings"]["series_uid"] == new_uid and marker["settings"]["instances"] == 48
    after = int((nibabel.load(out / study / "result.nii.gz").get_fdata() > 0).sum())
    assert after > before  # computed from the brighter series
    # one instance fewer under the same UID: computed again too
    victim = sorted(case.iterdir())[-1]
    victim.unlink()
    third = run_batch(jobs_from_folder(str(tmp_path / "in"), manifest, params, str(out)),
                      str(out), scheduler=dask_cluster.scheduler_address, progress=False)
    assert (third.done, third.skipped) == (1, 0)
    assert json.loads((out / study / "done.json").read_text())["settings"]["instances"] == 47


# ---- 1 and 4: changed plugin code; long-lived workers run this run's code -------------------------
IMPL = '''
import numpy as np
from medviewer.plugins.api import LabelMapResult, Plugin


class Threshold(Plugin):
    def run(self, request, progress, cancel):
        volume = request.volume
        mask = (np.asarray(volume.array) {op} float(request.params["hu"])).astype(np.uint8)
        return LabelMapResult(volume.with_array(mask), self.manifest.labels, note="{tag}")
'''


def test_long_lived_workers_run_the_plugin_code_of_this_run(cohort, dask_cluster, tmp_path):
    """The module's LocalCluster keeps its two worker processes across runs: the second run,
    after the plugin's code changed, is computed again, and with the new code. The copy keeps
    the module name of tests/batch/threshold_plugin (which other tests ran on these workers)."""
    folder = tmp_path / "plugins" / "threshold"
    shutil.copytree(HERE / "threshold_plugin", folder, ignore=shutil.ignore_patterns("__pycache__"))
    impl = folder / "threshold_impl.py"
    impl.write_text(IMPL.format(op=">", tag="code one"))
    manifest = Manifest.from_dict(json.loads((folder / "plugin.json").read_text()), search_path=str(folder))
    params = manifest.resolve_params({"hu": "200"})
    src = _small_cohort(cohort, tmp_path / "in", ("STS_002", "STS_003", "STS_008"))
    out = tmp_path / "out"

    def run():
        return run_batch(jobs_from_folder(str(src), manifest, params, str(out)), str(out),
                         scheduler=dask_cluster.scheduler_address, progress=False)

    first = run()
    assert first.done == 3
    logs = {s: (out / s / "log.txt").read_text() for s in (r["study"] for r in first.rows)}
    assert all("warning: code one" in t for t in logs.values())
    code_one = {json.loads((out / s / "done.json").read_text())["settings"]["code"] for s in logs}
    impl.write_text(IMPL.format(op="<", tag="code two, changed"))  # other code, another size
    second = run()
    assert (second.done, second.skipped) == (3, 0)  # the code changed: nothing skipped
    for row in second.rows:
        text = (out / row["study"] / "log.txt").read_text()
        last = text.split("==== attempt")[-1]
        assert "warning: code two, changed" in last and "code one" not in last
    assert sum("imported afresh" in (out / r["study"] / "log.txt").read_text() for r in second.rows) >= 1
    code_two = {json.loads((out / s / "done.json").read_text())["settings"]["code"] for s in logs}
    assert len(code_one) == len(code_two) == 1 and code_one != code_two
    third = run()
    assert (third.done, third.skipped) == (0, 3)


# ---- 2: a dead scheduler; summary.csv covers every study in OUT ------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dask_processes(tmp_path):
    """A Dask scheduler and two single-threaded workers, each a process of its own."""
    pytest.importorskip("distributed")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    logs = tmp_path / "dask-logs"
    logs.mkdir()

    def start(name, *args):
        with open(logs / f"{name}.log", "wb") as fh:
            return subprocess.Popen([sys.executable, "-m", *args], stdout=fh, stderr=subprocess.STDOUT, env=env,
                                    cwd=str(tmp_path))

    scheduler = start("scheduler", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
                      "--no-dashboard")
    workers = [start(f"worker{n}", "distributed.cli.dask_worker", address, "--nthreads", "1", "--no-dashboard",
                     "--no-nanny") for n in range(2)]
    from distributed import Client

    with Client(address, timeout="60s") as client:
        client.wait_for_workers(2, timeout=120)
    yield scheduler, workers, address
    for proc in [scheduler, *workers]:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_dead_scheduler_leaves_one_line_failures_that_agree_with_the_disk(cohort, dask_processes, dask_cluster,
                                                                            tmp_path, capfd):
    scheduler, workers, address = dask_processes
    manifest = get_manifest("test-threshold")
    src = _small_cohort(cohort, tmp_path / "in")
    out = tmp_path / "out"
    jobs = jobs_from_folder(str(src), manifest, manifest.resolve_params({"sleep_s": "6"}), str(out))
    result = {}
    thread = threading.Thread(target=lambda: result.update(summary=run_batch(jobs, str(out), scheduler=address,
                                                                             progress=False)))
    thread.start()
    _wait_for(lambda: all((out / j.study / "log.txt").exists() and "stage: thresholding" in
                          (out / j.study / "log.txt").read_text() for j in jobs), what="both studies running")
    scheduler.send_signal(signal.SIGKILL)
    thread.join(120)
    assert not thread.is_alive()
    summary = result["summary"]
    assert summary.failed == 2
    for row in summary.rows:
        assert "connection to the Dask scheduler was lost" in row["message"] and "\n" not in row["message"]
    # the surviving workers finish their studies: into their staging folders, not as results
    _wait_for(lambda: all("status done" in (out / j.study / "log.txt").read_text() for j in jobs), 60,
              "the workers to finish")
    rows = _rows(out)
    for job in jobs:
        assert rows[job.study]["status"] == "failed"
        assert not (out / job.study / "done.json").exists() and not (out / job.study / "result.nii.gz").exists()
        assert json.loads((out / job.study / "failed.json").read_text())["status"] == "failed"
        log = (out / job.study / "log.txt").read_text()
        assert "client: recorded failed" in log and "wait in .attempt-" in log
    captured = capfd.readouterr()
    assert "Traceback" not in captured.out + captured.err and "CommClosedError" not in captured.out + captured.err
    assert (out / "dask.log").exists()  # Dask's own records went there

    # A later run over one of the studies, on a live cluster: done; summary.csv still lists the other
    again = run_batch([jobs[1]], str(out), scheduler=dask_cluster.scheduler_address, progress=False)
    assert again.done == 1 and [r["study"] for r in again.earlier] == [jobs[0].study]
    rows = _rows(out)
    assert set(rows) == {j.study for j in jobs}
    assert rows[jobs[1].study]["status"] == "done" and (out / jobs[1].study / "done.json").exists()
    assert rows[jobs[0].study]["status"] == "failed" and "not in this run" in rows[jobs[0].study]["message"]
    assert not [p for p in (out / jobs[1].study).iterdir() if p.name.startswith(".attempt-")]
    assert not (out / jobs[1].study / "failed.json").exists()


# ---- 3: an unreachable PACS is found before the first study -----------------------------------------
def test_an_unreachable_send_to_pacs_stops_the_batch_before_the_first_study(cohort, orthanc, tmp_path, capsys):
    src = _small_cohort(cohort, tmp_path / "in", ("STS_002",))
    out = tmp_path / "out"
    base = ["batch", "test-threshold", "--input", str(src), "--out", str(out), "--format", "seg", "--quiet",
            "--workers", "1", "--send-to-pacs"]
    for server in (f"http://127.0.0.1:{_free_port()}/dicom-web",          # nothing listens there
                   f"dicom://WRONG_AET@127.0.0.1:{orthanc.dicom_port}"):  # the real Orthanc refuses the AE title
        assert main(base + [server]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--send-to-pacs" in err and "does not answer" in err, err
        assert not out.exists()  # no study ran
    # the same through the API
    manifest = get_manifest("test-threshold")
    jobs = jobs_from_folder(str(src), manifest, manifest.resolve_params({}), str(out), seg=True,
                            send_to=f"http://127.0.0.1:{_free_port()}/dicom-web")
    from medviewer.core.errors import MedviewerError

    with pytest.raises(MedviewerError, match="does not answer"):
        run_batch(jobs, str(out), workers=1, progress=False)
    assert not (out / jobs[0].study).exists()


# ---- 5: every attempt logged ----------------------------------------------------------------------
@pytest.mark.parametrize("where", ["pool", "dask"])
def test_a_retried_study_keeps_the_trace_of_its_first_attempt(cohort, dask_cluster, tmp_path, where):
    manifest = get_manifest("test-crash")
    src = _small_cohort(cohort, tmp_path / "in", ("STS_003", "STS_008"))
    out = tmp_path / "out"
    params = manifest.resolve_params({"patient": "STS_003", "once": str(tmp_path / "killed-once")})
    summary = run_batch(jobs_from_folder(str(src), manifest, params, str(out)), str(out), workers=2, progress=False,
                        scheduler=dask_cluster.scheduler_address if where == "dask" else None)
    assert summary.done == 2, summary.rows  # the study that killed its worker once is done on its retry
    study = next(r["study"] for r in summary.rows if r["study"].startswith("STS_003"))
    log = (out / study / "log.txt").read_text()
    first, second = log.split("==== attempt 2 of run ")[0], log.split("==== attempt 2 of run ")[1]
    assert "==== attempt 1 of run " in first and "stage: loading plugin" in first and "status" not in first
    assert "status done" in second and "client: recorded done" in second
    assert (tmp_path / "killed-once").exists()
