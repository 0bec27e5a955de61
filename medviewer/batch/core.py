"""Batch jobs, the per-study job function, and the two ways to run them (process pool, Dask)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from medviewer.core.errors import MedviewerError

SUMMARY_FIELDS = ("study", "series_uid", "plugin", "status", "seconds", "output", "message")
DONE_MARKER = "done.json"
LOG_FILE = "log.txt"
SUMMARY_FILE = "summary.csv"


@dataclass(frozen=True)
class BatchJob:
    """One study of a batch: which series to load, which plugin to run on it, where its output goes.

    Plain data (the plugin's Manifest included), so that it pickles to a pool or Dask worker;
    the worker needs medviewer and the plugin importable, and ``path`` readable.
    """

    study: str  # the output folder name, <patient>_<series number>
    path: str  # the series folder (or an image file)
    series: str | None  # the series key within ``path`` (None: the only one there)
    series_uid: str
    manifest: Any  # medviewer.plugins.api.Manifest
    params: Mapping[str, Any]
    out_dir: str  # OUT/<study>
    output: str  # OUT/<study>/result.<ext>
    seg: bool = False  # write a label map as DICOM SEG (result.dcm)
    device: str = "auto"
    timeout_s: float | None = None
    send_to: str | None = None  # a PACS to send a DICOM output to

    @property
    def marker(self) -> str:
        return os.path.join(self.out_dir, DONE_MARKER)

    @property
    def log(self) -> str:
        return os.path.join(self.out_dir, LOG_FILE)


@dataclass
class BatchSummary:
    rows: list[dict] = field(default_factory=list)
    csv_path: str = ""
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r["status"] == status)

    @property
    def done(self) -> int:
        return self.count("done")

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def skipped(self) -> int:
        return self.count("skipped")


# ---- finding the jobs ----------------------------------------------------------------------------
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(text: str) -> str:
    return _UNSAFE.sub("-", text).strip("-.") or "x"


def _output_name(manifest, seg: bool) -> str:
    from medviewer.plugins.headless import result_suffix

    return "result.dcm" if seg else "result" + result_suffix(manifest)


def jobs_from_index(index, manifest, params: Mapping[str, Any], out: str, *, path: str | None = None,
                    seg: bool = False, device: str = "auto", timeout_s: float | None = None,
                    send_to: str | None = None, taken: set[str] | None = None) -> list[BatchJob]:
    """One job per image series of a :class:`~medviewer.io.DicomIndex`."""
    jobs = []
    taken = taken if taken is not None else set()
    name = _output_name(manifest, seg)
    for entry in index.image_series():
        patient = _safe(entry.patient_id or "unknown")
        number = entry.series_number if entry.series_number is not None else "x"
        study = f"{patient}_{number}"
        if study in taken:  # two series of one patient with one number: the UID tells them apart
            study = f"{patient}_{_safe(entry.key)}"
        taken.add(study)
        out_dir = os.path.join(out, study)
        jobs.append(BatchJob(study, path or entry.folder, entry.key, entry.uid or "", manifest, dict(params),
                             out_dir, os.path.join(out_dir, name), seg, device, timeout_s, send_to))
    return jobs


def jobs_from_folder(folder: str, manifest, params: Mapping[str, Any], out: str, **options) -> list[BatchJob]:
    """One job per image series found under ``folder`` (any depth), in patient/series order."""
    from medviewer.io import index_folder

    if not os.path.isdir(folder):
        raise MedviewerError("not a folder", folder)
    index = index_folder(folder)
    jobs = jobs_from_index(index, manifest, params, out, **options)
    # Each job indexes its own series folder again (a worker gets no index): the folder must then
    # hold that series, found by its key.
    return sorted(jobs, key=lambda j: j.study)


def jobs_from_pacs(server: str, query, manifest, params: Mapping[str, Any], out: str, *,
                   cache_dir: str | None = None, progress: Callable[[str], None] | None = None,
                   settings=None, **options) -> list[BatchJob]:
    """Query ``server`` with ``query`` (a StudyQuery), retrieve each study into the cache (files
    already there are not fetched again), and make one job per image series."""
    from medviewer.pacs import default_cache_dir, open_server

    client = open_server(server, settings=settings)
    cache_dir = cache_dir or default_cache_dir(settings)
    studies = client.find_studies(query)
    if not studies:
        raise MedviewerError(f"no studies match on {client.server.label}")
    jobs: list[BatchJob] = []
    taken: set[str] = set()
    for n, st in enumerate(studies, 1):
        if progress:
            progress(f"retrieving study {n} of {len(studies)} (patient {st.patient_id or '-'})")
        result = client.retrieve_study(st.study_instance_uid, cache_dir)
        jobs.extend(jobs_from_index(result.index, manifest, params, out, path=result.folder, taken=taken,
                                    **options))
    return sorted(jobs, key=lambda j: j.study)


# ---- one job ---------------------------------------------------------------------------------------
def _settings(job: BatchJob) -> dict:
    """What makes a study's output what it is: an earlier output counts only when these match."""
    return json.loads(json.dumps({"plugin": job.manifest.id, "plugin_version": str(job.manifest.version),
                                  "params": dict(job.params), "seg": job.seg}, default=str))


def is_done(job: BatchJob) -> bool:
    """Whether an earlier run finished this study with the same plugin and parameters (its
    done.json marker says so and its output is there)."""
    if not (os.path.isfile(job.marker) and os.path.isfile(job.output)):
        return False
    try:
        with open(job.marker, encoding="utf-8") as fh:
            marker = json.load(fh)
    except (OSError, ValueError):
        return False
    return marker.get("settings") == _settings(job)


def _write_atomic(path: str, text: str) -> None:
    from medviewer.core.atomic import write_text

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_text(path, text, force=True)


class _Log:
    """The study's log.txt, written as it goes (kept when the worker dies)."""

    def __init__(self, path: str):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.fh = open(path, "w", encoding="utf-8")
        self.t0 = time.perf_counter()

    def __call__(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self.fh.write(f"{stamp} +{time.perf_counter() - self.t0:7.2f}s {text}\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def run_job(job: BatchJob) -> dict:
    """Run one study (in whatever process calls it) and return its summary row.

    Never raises for the study's own failure: a failed study is a row with status ``failed`` and
    the one-line message; the details (traceback) are in its log.
    """
    import warnings

    from medviewer.plugins.headless import run_on_path

    started = time.perf_counter()
    row = {"study": job.study, "series_uid": job.series_uid, "plugin": job.manifest.id, "status": "failed",
           "seconds": 0.0, "output": job.output, "message": ""}
    log = _Log(job.log)
    try:
        log(f"study {job.study}: series {job.series_uid or job.series or '-'} in {job.path}")
        log(f"plugin {job.manifest.id} (version {job.manifest.version}), parameters {json.dumps(dict(job.params), default=str)}")
        log(f"host {os.uname().nodename}, process {os.getpid()}")
        for stale in (job.marker, job.output):  # an earlier run's (other parameters): never left to mislead
            if os.path.exists(stale):
                os.unlink(stale)
        details: list[str] = []
        last_stage = [""]

        def on_event(event) -> None:
            if event.kind == "progress" and event.stage != last_stage[0]:
                last_stage[0] = event.stage
                log(f"stage: {event.stage}")
            elif event.kind == "errored" and event.detail:
                details.append(event.detail)

        def on_loaded(volume) -> None:
            log(f"loaded {volume.size_xyz[0]} x {volume.size_xyz[1]} x {volume.size_xyz[2]} voxels, "
                f"spacing {', '.join(f'{s:.3g}' for s in volume.spacing)} mm")

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # library chatter goes nowhere useful from a worker
            summary = run_on_path(job.manifest, job.path, job.output, job.params, series=job.series,
                                  device=job.device, force=True, seg=job.seg, isolation="thread",
                                  timeout_s=job.timeout_s, on_event=on_event, on_loaded=on_loaded)
        log(summary)
        message = ""
        if job.send_to:
            message = _send(job, log)
        row.update(status="done", message=message)
        row["seconds"] = round(time.perf_counter() - started, 2)
        _write_atomic(job.marker, json.dumps({**row, "settings": _settings(job)}, indent=2, default=str))
    except BaseException as exc:  # noqa: BLE001 - one study's failure is a row, never a crash
        if isinstance(exc, MedviewerError):
            message = str(exc)
        else:
            text = str(exc).strip().splitlines()
            message = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
        row.update(status="failed", message=message, seconds=round(time.perf_counter() - started, 2))
        log(f"FAILED: {message}")
        detail = "".join(details) or traceback.format_exc()
        log("details:\n" + detail)
        if isinstance(exc, KeyboardInterrupt):
            raise
    finally:
        log(f"status {row['status']} after {time.perf_counter() - started:.2f} s")
        log.close()
    return row


def _send(job: BatchJob, log) -> str:
    """Send a DICOM output to the job's PACS; a refusal is a failure of the study."""
    from medviewer.pacs import open_server

    if not job.output.lower().endswith(".dcm"):
        log(f"not sent to {job.send_to}: the output is not DICOM (use --format seg)")
        return "not sent (not DICOM)"
    client = open_server(job.send_to)
    result = client.send([job.output])
    if result.failed:
        reason = "; ".join(r for _, r in result.failed)
        raise MedviewerError(f"the output was not stored by {client.server.label}: {reason}", job.output)
    log(f"sent {job.output} to {client.server.label}")
    return f"sent to {client.server.label}"


# ---- the whole batch ------------------------------------------------------------------------------
def _skipped_row(job: BatchJob) -> dict:
    row = {"study": job.study, "series_uid": job.series_uid, "plugin": job.manifest.id, "status": "skipped",
           "seconds": 0.0, "output": job.output, "message": "finished in an earlier run"}
    try:
        with open(job.marker, encoding="utf-8") as fh:
            earlier = json.load(fh)
        row["seconds"] = earlier.get("seconds", 0.0)
    except (OSError, ValueError):
        pass
    return row


def write_summary(path: str, rows: Iterable[dict]) -> None:
    """The summary CSV (one row per study), replaced atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    _write_atomic(path, buf.getvalue())


def read_summary(path: str) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _failed_row(job: BatchJob, message: str) -> dict:
    return {"study": job.study, "series_uid": job.series_uid, "plugin": job.manifest.id, "status": "failed",
            "seconds": 0.0, "output": job.output, "message": message}


def run_batch(jobs: Sequence[BatchJob], out: str, *, workers: int | None = None, scheduler: str | None = None,
              force: bool = False, progress: bool = True, summary_name: str = SUMMARY_FILE,
              on_row: Callable[[dict], None] | None = None) -> BatchSummary:
    """Run ``jobs``: skip finished ones (unless ``force``), run the rest in a local 'spawn' process
    pool of ``workers`` processes, or on the Dask cluster at ``scheduler`` ('local' starts a
    LocalCluster of ``workers`` single-threaded processes). The summary CSV (OUT/summary.csv) is
    rewritten after every finished study. Returns the rows in job order."""
    started = time.perf_counter()
    os.makedirs(out, exist_ok=True)
    csv_path = os.path.join(out, summary_name)
    order = {job.study: n for n, job in enumerate(jobs)}
    if len(order) != len(jobs):
        raise MedviewerError("two jobs share one output folder name")
    rows: dict[str, dict] = {}
    todo = []
    for job in jobs:
        if not force and is_done(job):
            rows[job.study] = _skipped_row(job)
        else:
            todo.append(job)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), initial=len(rows), desc="batch", unit="study", file=sys.stderr,
                   disable=None, dynamic_ncols=True)

    def finished(row: dict) -> None:
        rows[row["study"]] = row
        write_summary(csv_path, sorted(rows.values(), key=lambda r: order[r["study"]]))
        if bar is not None:
            bar.set_postfix(done=sum(r["status"] == "done" for r in rows.values()),
                            failed=sum(r["status"] == "failed" for r in rows.values()),
                            skipped=sum(r["status"] == "skipped" for r in rows.values()), refresh=False)
            bar.update(1)
        if on_row is not None:
            on_row(row)

    write_summary(csv_path, sorted(rows.values(), key=lambda r: order[r["study"]]))
    if bar is not None:
        bar.set_postfix(done=0, failed=0, skipped=len(rows))
    try:
        if todo:
            if scheduler:
                _run_dask(todo, scheduler, workers, finished)
            else:
                _run_pool(todo, workers, finished)
    finally:
        if bar is not None:
            bar.close()
    summary = BatchSummary(sorted(rows.values(), key=lambda r: order[r["study"]]), csv_path,
                           time.perf_counter() - started)
    return summary


def _run_pool(jobs: Sequence[BatchJob], workers: int | None, finished: Callable[[dict], None]) -> None:
    """A 'spawn' process pool. A worker that dies (a crash in native code, the kernel's OOM
    killer) breaks the whole pool and fails every job it held; those jobs are then run again,
    each in a process of its own, so that only the study that kills its process fails."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    ctx = mp.get_context("spawn")
    broken: list[BatchJob] = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = {pool.submit(run_job, job): job for job in jobs}
        try:
            for fut in as_completed(futures):
                job = futures[fut]
                try:
                    finished(fut.result())
                except BrokenProcessPool:
                    broken.append(job)
                except Exception as exc:  # the job could not be sent or its row not returned
                    finished(_failed_row(job, f"worker process failed: {type(exc).__name__}: {exc}"))
        except KeyboardInterrupt:
            for fut in futures:
                fut.cancel()
            raise
    if not broken:
        return

    def alone(job: BatchJob) -> dict:
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as own:
            try:
                return own.submit(run_job, job).result()
            except BrokenProcessPool:
                return _failed_row(job, "the worker process died while running this study (a crash in native "
                                        "code, or killed for memory); see its log for how far it got")

    with ThreadPoolExecutor(max_workers=workers) as threads:
        for fut in as_completed([threads.submit(alone, job) for job in broken]):
            finished(fut.result())


def _run_dask(jobs: Sequence[BatchJob], scheduler: str, workers: int | None,
              finished: Callable[[dict], None]) -> None:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise MedviewerError("--scheduler needs Dask distributed (pip install distributed)") from None

    cluster = None
    try:
        if scheduler == "local":
            cluster = LocalCluster(n_workers=max(1, workers or os.cpu_count() or 1), threads_per_worker=1,
                                   processes=True, dashboard_address=None)
            client = Client(cluster)
        else:
            client = Client(scheduler, timeout="20s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise MedviewerError(f"cannot reach the Dask scheduler ({exc})", scheduler) from None
    try:
        futures = {client.submit(run_job, job, key=f"medviewer-batch-{job.study}-{time.time_ns()}", pure=False,
                                 retries=0): job for job in jobs}
        for fut in as_completed(list(futures)):
            job = futures[fut]
            try:
                row = fut.result()
            except Exception as exc:  # the worker died (KilledWorker) or could not unpickle the job
                row = _failed_row(job, f"Dask worker failed: {type(exc).__name__}: {exc}")
            finished(row)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
