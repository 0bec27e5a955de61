"""Batch jobs, the per-study job function, and the two ways to run them (process pool, Dask).

What is on disk is the truth of a batch. A worker writes a study's files into a staging folder
of its own attempt (``OUT/<study>/.attempt-<run>-<n>/``) and returns its row; the client alone
moves them into place and writes ``done.json`` (or ``failed.json``). So a worker that goes on
after its scheduler died, or after the client gave up on it, never makes a study look finished
behind the summary's back. ``done.json`` records what the result was made from (the series' UID,
instance count and SOP Instance UIDs, the plugin's code hash and parameters): a rerun skips a
study only when all of these still match.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import importlib
import importlib.util
import io
import json
import logging
import os
import re
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

from medviewer.core.errors import MedviewerError

SUMMARY_FIELDS = ("study", "series_uid", "plugin", "status", "seconds", "output", "message")
DONE_MARKER = "done.json"
FAILED_MARKER = "failed.json"
LOG_FILE = "log.txt"
SUMMARY_FILE = "summary.csv"
STAGING_PREFIX = ".attempt-"
DASK_LOG = "dask.log"
MESSAGE_LIMIT = 300  # characters of a summary row's message


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
    instances: int = 0  # the series' instance count when the job was made
    sop_digest: str = ""  # a hash of its SOP Instance UIDs
    code_hash: str = ""  # plugin_code_hash(manifest) on the client
    run_id: str = ""  # set by run_batch
    patient_id: str = ""
    study_uid: str = ""
    sr_files: tuple[str, ...] = ()  # the study's SR files (click-segment's seeds from measurements)
    lesions: tuple = ()  # click-segment: medviewer.batch.click.LesionSeeds from a points CSV
    seeds_from_sr: bool = False  # click-segment: seeds at the middle of the SRs' measurements

    @property
    def marker(self) -> str:
        return os.path.join(self.out_dir, DONE_MARKER)

    @property
    def failed_marker(self) -> str:
        return os.path.join(self.out_dir, FAILED_MARKER)

    @property
    def log(self) -> str:
        return os.path.join(self.out_dir, LOG_FILE)


@dataclass
class BatchSummary:
    rows: list[dict] = field(default_factory=list)  # this run's studies, in job order
    csv_path: str = ""
    seconds: float = 0.0
    earlier: list[dict] = field(default_factory=list)  # other studies in OUT, from earlier runs

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


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` as one line for a summary row or the terminal: its first non-empty line (Dask's
    messages run over several), whitespace collapsed, at most ``limit`` characters."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    line = re.sub(r"\s+", " ", lines[0]) if lines else ""
    return line if len(line) <= limit else line[:limit - 3].rstrip() + "..."


# ---- the plugin's code -------------------------------------------------------------------------------
CODE_SUFFIXES = (".py", ".json", ".yaml", ".yml")


def _plugin_code_root(manifest) -> str | None:
    """The folder (or single file) holding the plugin's code: a user plugin's folder, else the
    package of its entry module (``medviewer_plugins/click_segment`` for ``medviewer_plugins.click_segment.impl``)."""
    if manifest.search_path:
        return os.path.abspath(manifest.search_path)
    module = manifest.entry.partition(":")[0]
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not os.path.isfile(spec.origin):
        return None
    return os.path.dirname(os.path.abspath(spec.origin)) if "." in module else os.path.abspath(spec.origin)


def _code_files(root: str) -> list[str]:
    if os.path.isfile(root):
        return [root]
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
        found += [os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(CODE_SUFFIXES)]
    return found


def plugin_code_hash(manifest) -> str:
    """A hash of the plugin's source files (and its id, version and entry): what a done-marker
    and a worker compare, so that changed plugin code is never taken for the code that ran."""
    h = hashlib.sha256(f"{manifest.id}|{manifest.version}|{manifest.entry}".encode())
    root = _plugin_code_root(manifest)
    for path in _code_files(root) if root else ():
        h.update(os.path.relpath(path, os.path.dirname(root)).encode() + b"\0")
        with open(path, "rb") as fh:
            h.update(hashlib.sha256(fh.read()).digest())
    return h.hexdigest()[:16]


_IMPORTED: dict[str, str] = {}  # a plugin's code folder -> the code hash this process last ran from it


def _fresh_plugin_code(job: BatchJob, log) -> None:
    """Make this (long-lived) worker run the plugin code of this run: refuse when it sees other
    code than the client did; forget the plugin's modules when it imported an earlier version of
    them, or a module of the entry's name from another folder (two plugins' ``impl.py``)."""
    if not job.code_hash:
        return
    here = plugin_code_hash(job.manifest)
    if here != job.code_hash:
        raise MedviewerError(f"this worker sees other code for plugin {job.manifest.id} (hash {here}) than the "
                             f"run was started with ({job.code_hash}): install the same plugin on every worker")
    root = _plugin_code_root(job.manifest) or ""
    folder = job.manifest.search_path
    if folder:  # first on sys.path, ahead of another plugin folder with a module of the same name
        while folder in sys.path:
            sys.path.remove(folder)
        sys.path.insert(0, folder)
    entry = job.manifest.entry.partition(":")[0]
    loaded = sys.modules.get(entry)
    elsewhere = loaded is not None and not _within(getattr(loaded, "__file__", None), root)
    if _IMPORTED.get(root) != here or elsewhere:
        stale = [name for name, mod in list(sys.modules.items())
                 if _within(getattr(mod, "__file__", None), root) or (elsewhere and name == entry)]
        for name in stale:
            del sys.modules[name]
        importlib.invalidate_caches()
        if stale:
            log(f"plugin code {here}: {len(stale)} module(s) this worker had imported before (other code) "
                "imported afresh")
    _IMPORTED[root] = here
    log(f"plugin code hash {here}")


def _within(path: str | None, root: str) -> bool:
    if not path or not root:
        return False
    path = os.path.abspath(path)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


# ---- finding the jobs ----------------------------------------------------------------------------
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(text: str) -> str:
    return _UNSAFE.sub("-", text).strip("-.") or "x"


def _output_name(manifest, seg: bool) -> str:
    from medviewer.plugins.headless import result_suffix

    return "result.dcm" if seg else "result" + result_suffix(manifest)


def _sop_digest(entry) -> str:
    uids = sorted(i.sop_instance_uid for i in entry.instances)
    return hashlib.sha256("\n".join(uids).encode()).hexdigest()[:16]


def _study_srs(index, entry) -> tuple[str, ...]:
    """The SR files of ``entry``'s study (measurement reports among them)."""
    try:
        study = index.study_of(entry)
    except KeyError:
        return ()
    return tuple(i.path for s in study.series if s.modality == "SR" for i in s.instances)


def jobs_from_index(index, manifest, params: Mapping[str, Any], out: str, *, path: str | None = None,
                    seg: bool = False, device: str = "auto", timeout_s: float | None = None,
                    send_to: str | None = None, taken: set[str] | None = None,
                    code_hash: str | None = None) -> list[BatchJob]:
    """One job per image series of a :class:`~medviewer.io.DicomIndex`."""
    jobs = []
    taken = taken if taken is not None else set()
    name = _output_name(manifest, seg)
    code_hash = code_hash or plugin_code_hash(manifest)
    for entry in index.image_series():
        patient = _safe(entry.patient_id or "unknown")
        number = entry.series_number if entry.series_number is not None else "x"
        study = f"{patient}_{number}"
        if study in taken:  # two series of one patient with one number: the UID tells them apart
            study = f"{patient}_{_safe(entry.key)}"
        taken.add(study)
        out_dir = os.path.join(out, study)
        jobs.append(BatchJob(study, path or entry.folder, entry.key, entry.uid or "", manifest, dict(params),
                             out_dir, os.path.join(out_dir, name), seg, device, timeout_s, send_to,
                             instances=len(entry.instances), sop_digest=_sop_digest(entry), code_hash=code_hash,
                             patient_id=entry.patient_id or "", study_uid=entry.study_instance_uid or "",
                             sr_files=_study_srs(index, entry)))
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
    options.setdefault("code_hash", plugin_code_hash(manifest))
    for n, st in enumerate(studies, 1):
        if progress:
            progress(f"retrieving study {n} of {len(studies)} (patient {st.patient_id or '-'})")
        result = client.retrieve_study(st.study_instance_uid, cache_dir)
        jobs.extend(jobs_from_index(result.index, manifest, params, out, path=result.folder, taken=taken,
                                    **options))
    return sorted(jobs, key=lambda j: j.study)


# ---- one job ---------------------------------------------------------------------------------------
def _settings(job: BatchJob) -> dict:
    """What makes a study's output what it is: an earlier output counts only when these match
    (the series it was computed from, the plugin's code and parameters, the seeds)."""
    settings = {"plugin": job.manifest.id, "plugin_version": str(job.manifest.version), "code": job.code_hash,
                "params": dict(job.params), "seg": job.seg, "series_uid": job.series_uid,
                "instances": job.instances, "sop_digest": job.sop_digest}
    if job.manifest.kind == "interactive":
        settings["seeds"] = {"points": [repr(l) for l in job.lesions], "from_sr": job.seeds_from_sr,
                             "sr_files": sorted(os.path.basename(p) for p in job.sr_files) if job.seeds_from_sr else []}
    return json.loads(json.dumps(settings, default=str))


def _read_json(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_done(job: BatchJob) -> bool:
    """Whether an earlier run finished this study from the same series with the same plugin code,
    parameters and seeds (its done.json marker says so and its output is there)."""
    if not os.path.isfile(job.output):
        return False
    marker = _read_json(job.marker)
    return marker is not None and marker.get("settings") == _settings(job)


def _write_atomic(path: str, text: str) -> None:
    from medviewer.core.atomic import write_text

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_text(path, text, force=True)


def _stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


class _Log:
    """The study's log.txt, appended to as it goes (kept when the worker dies): every attempt
    starts with a line naming its number within the run, so a retried study keeps the trace of
    its earlier attempts."""

    def __init__(self, path: str, run_id: str):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.attempt = 1 + _attempts(path, run_id)
        self.fh = open(path, "a", encoding="utf-8")
        self.t0 = time.perf_counter()
        self(f"==== attempt {self.attempt} of run {run_id} ====")

    def __call__(self, text: str) -> None:
        self.fh.write(f"{_stamp()} +{time.perf_counter() - self.t0:7.2f}s {text}\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def _attempts(path: str, run_id: str) -> int:
    """How many attempts of run ``run_id`` the log holds."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return 0
    return len(re.findall(rf"==== attempt \d+ of run {re.escape(run_id)} ====", text))


def note_in_log(job: BatchJob, text: str) -> None:
    """A line the client adds to a study's log (what it recorded, and why)."""
    os.makedirs(job.out_dir, exist_ok=True)
    with open(job.log, "a", encoding="utf-8") as fh:
        fh.write(f"{_stamp()} client: {text}\n")


def _failure_message(exc: BaseException) -> str:
    if isinstance(exc, MedviewerError):
        return one_line(str(exc))
    text = one_line(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run_job(job: BatchJob) -> dict:
    """Run one study (in whatever process calls it) and return its summary row.

    The output goes to this attempt's staging folder (the row's ``staged``), for the client to
    move into place (:func:`settle`). Never raises for the study's own failure: a failed study is
    a row with status ``failed`` and the one-line message; the details (traceback) are in its log.
    """
    import warnings

    started = time.perf_counter()
    row = _row(job, "failed", "")
    log = _Log(job.log, job.run_id)
    staging = os.path.join(job.out_dir, f"{STAGING_PREFIX}{job.run_id}-{log.attempt}")
    row["attempt"] = log.attempt
    details: list[str] = []
    try:
        log(f"study {job.study}: series {job.series_uid or job.series or '-'} ({job.instances} instances) "
            f"in {job.path}")
        log(f"plugin {job.manifest.id} (version {job.manifest.version}), "
            f"parameters {json.dumps(dict(job.params), default=str)}")
        log(f"host {os.uname().nodename}, process {os.getpid()}")
        _fresh_plugin_code(job, log)
        os.makedirs(staging, exist_ok=True)
        staged = os.path.join(staging, os.path.basename(job.output))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # library chatter goes nowhere useful from a worker
            summary = _compute(job, staged, log, details)
        log(summary)
        row.update(status="done", staged=staging)
    except BaseException as exc:  # noqa: BLE001 - one study's failure is a row, never a crash
        row.update(status="failed", message=_failure_message(exc))
        log(f"FAILED: {row['message']}")
        log("details:\n" + ("".join(details) or traceback.format_exc()))
        if isinstance(exc, KeyboardInterrupt):
            raise
    finally:
        row["seconds"] = round(time.perf_counter() - started, 2)
        waits = f"; its files wait in {os.path.basename(staging)} for the client to record them" \
            if row["status"] == "done" else ""
        log(f"status {row['status']} after {row['seconds']:.2f} s{waits}")
        log.close()
    return row


def _compute(job: BatchJob, staged: str, log, details: list[str]) -> str:
    """Load the series, run the plugin, write its output to ``staged``; the one-line summary."""
    from medviewer.plugins.headless import run_on_path

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

    if job.manifest.kind == "interactive":
        from medviewer.batch.click import run_click_job

        return run_click_job(job, staged, log, on_event=on_event, on_loaded=on_loaded)
    return run_on_path(job.manifest, job.path, staged, job.params, series=job.series, device=job.device,
                       force=True, seg=job.seg, isolation="thread", timeout_s=job.timeout_s,
                       on_event=on_event, on_loaded=on_loaded)


# ---- the client records what the workers did -------------------------------------------------------
def check_destination(server: str, timeout: float = 10.0) -> str:
    """Check, before any study runs, that the PACS a batch sends to answers (C-ECHO, or a
    DICOMweb search); its label, or a one-line MedviewerError."""
    from medviewer.pacs import open_server

    try:
        client = open_server(server, timeout=timeout)
        client.echo()
    except MedviewerError as exc:
        raise MedviewerError(f"--send-to-pacs {server}: the PACS does not answer, nothing was run "
                             f"({one_line(exc.message)})") from None
    return client.server.label


def _send(job: BatchJob) -> str:
    """Send a DICOM output to the job's PACS; a refusal is a failure of the study."""
    from medviewer.pacs import open_server

    if not job.output.lower().endswith(".dcm"):
        return "not sent (not DICOM)"
    client = open_server(job.send_to)
    result = client.send([job.output])
    if result.failed:
        reason = "; ".join(r for _, r in result.failed)
        raise MedviewerError(f"the output was not stored by {client.server.label}: {reason}", job.output)
    return f"sent to {client.server.label}"


def _remove_staging(job: BatchJob) -> None:
    try:
        names = os.listdir(job.out_dir)
    except OSError:
        return
    for name in names:
        if name.startswith(STAGING_PREFIX):
            shutil.rmtree(os.path.join(job.out_dir, name), ignore_errors=True)


def forget_earlier(job: BatchJob) -> None:
    """Before a study runs again: its earlier output and markers go (never left to mislead), and
    any staging folders of earlier attempts."""
    earlier = _read_json(job.marker) or {}
    names = {os.path.basename(job.output), DONE_MARKER, FAILED_MARKER, *earlier.get("files", [])}
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(job.out_dir, os.path.basename(name)))
    _remove_staging(job)


def settle(job: BatchJob, row: dict) -> dict:
    """Record a worker's row on disk (the client alone does): a done study's staged files moved
    into its folder, sent to the PACS where asked, then done.json; a failed one's failed.json.
    Returns the row as recorded (a study whose files cannot be moved or sent is failed)."""
    row = dict(row)
    staging = row.pop("staged", None)
    row["message"] = one_line(row.get("message", ""))
    if row["status"] == "done":
        try:
            files = _move_in(staging, job.out_dir)
            if job.send_to:
                row["message"] = _send(job)
            _write_atomic(job.marker, json.dumps({**_public(row), "files": files, "settings": _settings(job),
                                                  "recorded": _stamp()}, indent=2, default=str))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(job.failed_marker)
            _remove_staging(job)
        except (MedviewerError, OSError) as exc:
            row.update(status="failed", message=_failure_message(exc))
    if row["status"] == "failed":
        _write_atomic(job.failed_marker, json.dumps({**_public(row), "recorded": _stamp()}, indent=2, default=str))
    note_in_log(job, f"recorded {row['status']}" + (f": {row['message']}" if row["message"] else ""))
    return row


def _move_in(staging: str | None, out_dir: str) -> list[str]:
    if not staging or not os.path.isdir(staging):
        raise MedviewerError("the worker's files are missing (its staging folder is gone)", out_dir)
    names = sorted(os.listdir(staging))
    for name in names:
        os.replace(os.path.join(staging, name), os.path.join(out_dir, name))
    return names


def _public(row: dict) -> dict:
    return {k: row.get(k, "") for k in SUMMARY_FIELDS}


# ---- the whole batch ------------------------------------------------------------------------------
def _row(job: BatchJob, status: str, message: str, seconds: float = 0.0) -> dict:
    return {"study": job.study, "series_uid": job.series_uid, "plugin": job.manifest.id, "status": status,
            "seconds": seconds, "output": job.output, "message": message}


def _skipped_row(job: BatchJob) -> dict:
    earlier = _read_json(job.marker) or {}
    return _row(job, "skipped", "finished in an earlier run", earlier.get("seconds", 0.0))


def _failed_row(job: BatchJob, message: str) -> dict:
    return _row(job, "failed", one_line(message))


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


def rows_on_disk(out: str, leave_out: Iterable[str] = ()) -> list[dict]:
    """The rows of the studies in ``out`` that earlier runs recorded (their done.json or
    failed.json), other than ``leave_out``; by study name."""
    rows = []
    skip = set(leave_out)
    try:
        names = sorted(os.listdir(out))
    except OSError:
        return rows
    for name in names:
        if name in skip:
            continue
        for marker, status in ((DONE_MARKER, "done"), (FAILED_MARKER, "failed")):
            data = _read_json(os.path.join(out, name, marker))
            if data is not None:
                row = {k: data.get(k, "") for k in SUMMARY_FIELDS}
                row.update(study=name, status=status,
                           message=one_line(f"not in this run; {status} on {data.get('recorded', 'an earlier run')}"
                                            + (f": {data.get('message')}" if data.get("message") else "")))
                rows.append(row)
                break
    return rows


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + f"{os.getpid()}"


def run_batch(jobs: Sequence[BatchJob], out: str, *, workers: int | None = None, scheduler: str | None = None,
              force: bool = False, progress: bool = True, summary_name: str = SUMMARY_FILE,
              on_row: Callable[[dict], None] | None = None,
              after_row: Callable[[str], None] | None = None) -> BatchSummary:
    """Run ``jobs``: skip finished ones (unless ``force``), run the rest in a local 'spawn' process
    pool of ``workers`` processes, or on the Dask cluster at ``scheduler`` ('local' starts a
    LocalCluster of ``workers`` single-threaded processes). A PACS the jobs send to is checked
    before the first study. The summary CSV (OUT/summary.csv) lists every study in OUT, earlier
    runs' included, and is rewritten after every finished study; ``after_row(out)`` is called then
    too (the click-segment cohort table). Returns this run's rows in job order."""
    started = time.perf_counter()
    csv_path = os.path.join(out, summary_name)
    order = {job.study: n for n, job in enumerate(jobs)}
    if len(order) != len(jobs):
        raise MedviewerError("two jobs share one output folder name")
    run_id = new_run_id()
    rows: dict[str, dict] = {}
    todo = []
    for job in jobs:
        if not force and is_done(job):
            rows[job.study] = _skipped_row(job)
        else:
            todo.append(replace(job, run_id=run_id))
    for server in sorted({job.send_to for job in todo if job.send_to}):
        check_destination(server)
    os.makedirs(out, exist_ok=True)
    by_study = {job.study: job for job in todo}
    bar = _progress_bar(len(jobs), len(rows)) if progress else None

    def write() -> None:
        ours = sorted(rows.values(), key=lambda r: order[r["study"]])
        write_summary(csv_path, ours + rows_on_disk(out, order))
        if after_row is not None:
            after_row(out)

    def finished(row: dict) -> None:
        row = settle(by_study[row["study"]], row)
        rows[row["study"]] = row
        write()
        if bar is not None:
            bar.set_postfix(**{s: sum(r["status"] == s for r in rows.values()) for s in ("done", "failed", "skipped")},
                            refresh=False)
            bar.update(1)
        if on_row is not None:
            on_row(row)

    for job in todo:
        forget_earlier(job)
    write()
    try:
        if todo:
            if scheduler:
                _run_dask(todo, scheduler, workers, finished, out)
            else:
                _run_pool(todo, workers, finished)
    finally:
        if bar is not None:
            bar.close()
    ours = sorted(rows.values(), key=lambda r: order[r["study"]])
    return BatchSummary(ours, csv_path, time.perf_counter() - started, rows_on_disk(out, order))


def _progress_bar(total: int, initial: int):
    from tqdm import tqdm

    bar = tqdm(total=total, initial=initial, desc="batch", unit="study", file=sys.stderr, disable=None,
               dynamic_ncols=True)
    bar.set_postfix(done=0, failed=0, skipped=initial)
    return bar


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
                    finished(_failed_row(job, f"worker process failed: {_failure_message(exc)}"))
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


def dask_failure(exc: BaseException) -> str:
    """One line for a study whose Dask task failed outside the study's own code."""
    name = type(exc).__name__
    text = str(exc)
    if name == "KilledWorker":
        return ("the Dask workers running it died, each time it was tried (KilledWorker: a crash in native "
                "code, or killed for memory); see its log for each attempt")
    if "scheduler-connection-lost" in text or name in ("CommClosedError", "FutureCancelledError", "CancelledError"):
        return ("the connection to the Dask scheduler was lost before this study's result came back: nothing "
                "recorded for it (a worker may still finish it into a staging folder); run the batch again")
    return f"Dask task failed: {name}: {one_line(text, 200)}"


@contextlib.contextmanager
def _dask_logs_to(path: str):
    """Dask's and asyncio's log records (tracebacks over several lines when the scheduler goes)
    go to OUT/dask.log for the curious, not to the terminal or the summary."""
    handler = logging.FileHandler(path, encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    saved = []
    for name in ("distributed", "asyncio", "tornado"):
        logger = logging.getLogger(name)
        saved.append((logger, logger.handlers[:], logger.propagate))
        logger.handlers[:] = [handler]
        logger.propagate = False
    try:
        yield
    finally:
        for logger, handlers, propagate in saved:
            logger.handlers[:] = handlers
            logger.propagate = propagate
        handler.close()


def _run_dask(jobs: Sequence[BatchJob], scheduler: str, workers: int | None,
              finished: Callable[[dict], None], out: str) -> None:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise MedviewerError("--scheduler needs Dask distributed (pip install distributed)") from None

    with _dask_logs_to(os.path.join(out, DASK_LOG)):
        cluster = None
        try:
            if scheduler == "local":
                cluster = LocalCluster(n_workers=max(1, workers or os.cpu_count() or 1), threads_per_worker=1,
                                       processes=True, dashboard_address=None)
                client = Client(cluster)
            else:
                client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise MedviewerError(f"cannot reach the Dask scheduler ({one_line(str(exc), 200)})", scheduler) from None
        try:
            futures = {client.submit(run_job, job, key=f"medviewer-batch-{job.study}-{job.run_id}", pure=False,
                                     retries=0): job for job in jobs}
            for fut in as_completed(list(futures)):
                job = futures[fut]
                try:
                    row = fut.result()
                except Exception as exc:  # the worker died (KilledWorker), the scheduler went, ...
                    row = _failed_row(job, dask_failure(exc))
                finished(row)
        finally:
            with contextlib.suppress(Exception):
                client.close(timeout=10)
            if cluster is not None:
                with contextlib.suppress(Exception):
                    cluster.close()
