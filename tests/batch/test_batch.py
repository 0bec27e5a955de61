"""`medviewer batch`: a Dask LocalCluster (2 worker processes) and the local process pool over
real STS series; resume; a failing study logged while the rest complete; SEG outputs sent to a
PACS."""

from __future__ import annotations

import json
import os

import pytest

from medviewer.batch import jobs_from_folder, run_batch
from medviewer.batch.core import read_summary
from medviewer.cli import main
from medviewer.plugins.registry import get_manifest

pytestmark = pytest.mark.data
BROKEN = "STS_012"


def _rows(path):
    return {r["study"]: r for r in read_summary(str(path))}


def test_dask_cluster_batch_resumes_and_survives_a_failing_study(cohort, dask_cluster, tmp_path):
    manifest = get_manifest("lesion-density")
    out = tmp_path / "out"
    jobs = jobs_from_folder(str(cohort), manifest, manifest.resolve_params({"radius_mm": "6"}), str(out))
    assert len(jobs) == 5
    summary = run_batch(jobs, str(out), scheduler=dask_cluster.scheduler_address, progress=False)
    assert (summary.done, summary.failed, summary.skipped) == (4, 1, 0)
    rows = _rows(out / "summary.csv")
    assert len(rows) == 5
    failed = [r for r in rows.values() if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["study"].startswith(BROKEN)
    assert "slice(s) missing" in failed[0]["message"]
    log = (out / failed[0]["study"] / "log.txt").read_text()
    assert "FAILED" in log and "Traceback" in log and "slice(s) missing" in log
    assert not (out / failed[0]["study"] / "done.json").exists()

    pids = set()
    for job in jobs:
        row = rows[job.study]
        assert row["plugin"] == "lesion-density" and row["series_uid"] == job.series_uid
        if row["status"] != "done":
            continue
        data = json.loads((out / job.study / "result.json").read_text())
        assert data["source"]["series_instance_uid"] == job.series_uid
        assert abs(sum(data["scores"].values()) - 1) < 1e-6
        assert max(data["scores"], key=data["scores"].get) == "soft tissue"  # the sarcoma at the crop centre
        text = (out / job.study / "log.txt").read_text()
        assert "parameters {\"radius_mm\": 6.0}" in text and "status done" in text
        pids.add(int(text.split("process ")[1].split()[0]))
        assert float(row["seconds"]) > 0
    assert os.getpid() not in pids  # ran in the Dask workers, not here

    mtimes = {j.study: os.stat(j.output).st_mtime_ns for j in jobs if rows[j.study]["status"] == "done"}
    again = run_batch(jobs, str(out), scheduler=dask_cluster.scheduler_address, progress=False)
    assert (again.done, again.failed, again.skipped) == (0, 1, 4)
    rows2 = _rows(out / "summary.csv")
    assert sorted(r["status"] for r in rows2.values()) == ["failed"] + ["skipped"] * 4
    assert {s: os.stat(out / s / "result.json").st_mtime_ns for s in mtimes} == mtimes


def test_cli_local_process_pool(cohort, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["batch", "lesion-density", "--input", str(cohort), "--out", str(out), "--workers", "2", "--quiet"]
    assert main(args) == 1  # one study failed
    text = capsys.readouterr().out
    assert "5 series" in text and "process pool of 2 workers" in text
    assert "4 done, 1 failed, 0 skipped" in text and f"failed: {BROKEN}" in text
    rows = _rows(out / "summary.csv")
    assert sorted(r["status"] for r in rows.values()) == ["done"] * 4 + ["failed"]
    # resume: finished studies skipped; --force runs them again
    done = next(s for s, r in rows.items() if r["status"] == "done")
    os.unlink(out / done / "result.json")  # an output lost since: that study runs again
    assert main(args) == 1
    assert "1 done, 1 failed, 3 skipped" in capsys.readouterr().out
    assert main(args + ["--force"]) == 1
    assert "4 done, 1 failed, 0 skipped" in capsys.readouterr().out
    # other parameters: earlier outputs do not count
    assert main(args + ["--param", "radius_mm=7"]) == 1
    assert "4 done, 1 failed, 0 skipped" in capsys.readouterr().out
    assert '"radius_mm": 7.0' in (out / done / "log.txt").read_text()
    assert json.loads((out / done / "done.json").read_text())["settings"]["params"] == {"radius_mm": 7.0}


def test_cli_unreachable_scheduler(cohort, tmp_path, capsys):
    assert main(["batch", "lesion-density", "--input", str(cohort), "--out", str(tmp_path / "out"),
                 "--scheduler", "not a scheduler address", "--quiet"]) == 1
    assert "cannot reach the Dask scheduler" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["pool", "dask"])
def test_a_study_that_kills_its_worker_fails_alone(cohort, dask_cluster, tmp_path, where):
    manifest = get_manifest("test-crash")
    out = tmp_path / "out"
    jobs = jobs_from_folder(str(cohort), manifest, manifest.resolve_params({"patient": "STS_003"}), str(out))
    summary = run_batch(jobs, str(out), workers=2, progress=False,
                        scheduler=dask_cluster.scheduler_address if where == "dask" else None)
    rows = _rows(out / "summary.csv")
    assert sorted(s for s, r in rows.items() if r["status"] == "done") == ["STS_002_3", "STS_008_2", "STS_019_2"]
    crashed = next(r for s, r in rows.items() if s.startswith("STS_003"))
    assert crashed["status"] == "failed"
    assert ("worker process died" in crashed["message"]) if where == "pool" else ("KilledWorker" in crashed["message"])
    assert "stage: loading plugin" in (out / crashed["study"] / "log.txt").read_text()  # how far it got
    assert summary.failed == 2  # and the broken series


def test_cli_refusals(cohort, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["batch", "lesion-density", "--input", str(cohort), "--out", out, "--format", "seg"]) == 1
    assert "cannot be written as a DICOM SEG" in capsys.readouterr().err
    assert main(["batch", "click-segment", "--input", str(cohort), "--out", out]) == 1
    assert "interactive" in capsys.readouterr().err
    assert main(["batch", "lesion-density", "--input", str(cohort), "--out", out, "--param", "nope=1"]) == 1
    assert "no parameter 'nope'" in capsys.readouterr().err
    assert main(["batch", "lesion-density", "--input", str(tmp_path / "missing"), "--out", out]) == 1
    assert "not a folder" in capsys.readouterr().err
    assert not os.path.exists(out)


def test_pacs_batch_writes_seg_and_sends_it_back(orthanc, sts_study, tmp_path, capsys, request):
    from medviewer.pacs import open_server

    out = tmp_path / "out"
    args = ["batch", "test-threshold", "--pacs", orthanc.dicomweb_url, "--query", f"patient={sts_study.patient_id}",
            "--cache", str(tmp_path / "cache"), "--out", str(out), "--format", "seg", "--param", "hu=300",
            "--send-to-pacs", orthanc.dicomweb_url, "--workers", "1", "--quiet"]
    assert main(args) == 0, capsys.readouterr()
    rows = read_summary(str(out / "summary.csv"))
    assert len(rows) == 1 and rows[0]["status"] == "done", rows
    assert rows[0]["series_uid"] == sts_study.ct_series_uid and "sent to" in rows[0]["message"]
    import pydicom

    seg = pydicom.dcmread(rows[0]["output"])
    found = orthanc.post("/tools/lookup", str(seg.SOPInstanceUID).encode())
    assert len(found) == 1
    # The Orthanc is shared by the session's PACS tests: leave the study as uploaded.
    request.addfinalizer(lambda: orthanc.delete(f"/instances/{found[0]['ID']}"))
    assert seg.Modality == "SEG"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == sts_study.ct_series_uid
    assert seg.SegmentSequence[0].SegmentLabel == "dense tissue"
    series = open_server(orthanc.dicomweb_url).find_series(sts_study.study_uid)
    assert any(s.modality == "SEG" and s.series_instance_uid == seg.SeriesInstanceUID for s in series)
    # a second run skips the study (its files are in the cache already): nothing computed or sent again
    assert main(args) == 0
    assert "0 done, 0 failed, 1 skipped" in capsys.readouterr().out
