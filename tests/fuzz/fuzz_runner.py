"""Run fuzz cases (tests/fuzz/mutations.py), each in a child process with a time and a memory
limit, and classify what the loader did.

Outcomes: ``load`` (a clean load: every file of the folder loaded or reported as skipped),
``refusal`` (one MedviewerError line naming a file or folder of the case), and the failures:
``foreign`` (another exception type or a traceback), ``crash`` (the child died of a signal),
``hang`` (past the time limit), ``fileless`` (a message naming no file, or of several lines),
``silent drop`` (files in != loaded + reported), ``memory`` (the memory limit was hit),
``info exit`` (`medviewer info` said nothing loads but the folder loads, or the reverse).

The children are forked from a parent that has imported the loader already, so a case costs its
own work only; each sets RLIMIT_AS before it runs, and its peak resident memory is measured.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import select
import signal
import time
import traceback
from dataclasses import dataclass

FAILURES = ("foreign", "crash", "hang", "fileless", "silent drop", "memory", "info exit")
OUTCOMES = ("load", "refusal") + FAILURES
MEMORY_LIMIT = 2 << 30
TIME_LIMIT_S = 60.0


@dataclass
class Result:
    outcome: str
    detail: str
    peak_mb: float
    seconds: float


_volumes: dict[str, object] = {}


def _quiet_libraries() -> None:
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.getLogger().setLevel(logging.CRITICAL)
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    logging.getLogger("highdicom").setLevel(logging.CRITICAL)


def preload(case) -> None:
    """In the parent: import the loader, and load the clean series an object case lies on, so
    that each child inherits them instead of paying for them."""
    import medviewer.commands.info  # noqa: F401
    import medviewer.io  # noqa: F401
    import medviewer.io.annotations  # noqa: F401
    import medviewer.io.measurements_sr  # noqa: F401
    import SimpleITK  # noqa: F401

    if case.series_folder and case.series_folder not in _volumes:
        from medviewer.io import load_volume

        _volumes[case.series_folder] = load_volume(case.series_folder)


def run_case(case, time_limit_s: float = TIME_LIMIT_S, memory_limit: int = MEMORY_LIMIT) -> Result:
    preload(case)
    read_end, write_end = os.pipe()
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        code = 0
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)  # GDCM and ITK print their warnings straight to the terminal
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
            _quiet_libraries()
            outcome, detail = classify(case)
        except MemoryError:
            outcome, detail = "memory", "MemoryError outside the loader"
        except BaseException as exc:  # noqa: BLE001
            outcome, detail = "foreign", "".join(traceback.format_exception(exc))[-3000:]
        try:
            os.write(write_end, json.dumps([outcome, detail[:3000]]).encode())
        except BaseException:  # noqa: BLE001
            code = 3
        os._exit(code)
    os.close(write_end)
    data, timed_out = _read_until(read_end, started + time_limit_s)
    os.close(read_end)
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - started
    peak_mb = usage.ru_maxrss / 1024
    if timed_out:
        return Result("hang", f"no answer within {time_limit_s:.0f} s", peak_mb, seconds)
    if os.WIFSIGNALED(status):
        return Result("crash", f"killed by signal {os.WTERMSIG(status)}", peak_mb, seconds)
    try:
        outcome, detail = json.loads(data.decode())
    except ValueError:
        return Result("crash", f"no result (exit status {os.WEXITSTATUS(status)})", peak_mb, seconds)
    if peak_mb * (1 << 20) > memory_limit:
        outcome, detail = "memory", f"peak {peak_mb:.0f} MB; {detail}"
    return Result(outcome, detail, peak_mb, seconds)


def _read_until(fd: int, deadline: float) -> tuple[bytes, bool]:
    chunks = []
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            return b"".join(chunks), True
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)


# ---- in the child -----------------------------------------------------------------------------

def classify(case) -> tuple[str, str]:
    if case.kind == "dicom":
        return _dicom(case)
    return _object(case)


def _refusal(exc, case) -> tuple[str, str]:
    text = str(exc)
    if "needs more memory" in text:
        return "memory", text
    if exc.path is None or "\n" in text or "\r" in text:
        return "fileless", repr(text)
    inside = os.path.abspath(exc.path).startswith(os.path.abspath(os.path.dirname(case.target)))
    if not inside and exc.path != case.series_folder:
        return "fileless", f"names {exc.path!r}, outside the case: {text}"
    if "Traceback" in text:
        return "foreign", text
    return "refusal", text


def _info(case) -> tuple[str, str] | bool:
    """`medviewer info --skipped FOLDER` through the CLI's own main (its last line of defence
    included): whether it found something loadable, or a failure outcome."""
    from medviewer.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["info", "--skipped", case.target])
    message = err.getvalue().strip()
    if status == 2 or "unexpected error" in message or "Traceback" in message:
        return "foreign", f"info: exit {status}: {message}"
    if status == 0:
        return True
    if "\n" in message or case.target not in message:
        return "fileless", f"info: exit {status}: {message!r}"
    return False


def _dicom(case) -> tuple[str, str]:
    from medviewer.core.errors import MedviewerError
    from medviewer.io import load_volume

    info_loadable = _info(case)
    if isinstance(info_loadable, tuple):
        return info_loadable
    try:
        volume = load_volume(case.target)
    except MedviewerError as exc:
        return _refusal(exc, case)
    if not info_loadable:
        return "info exit", "info found nothing loadable, yet the folder loads"
    return _accounting(case, volume)


def _files_in(folder: str) -> set[str]:
    """Every entry that is not a folder, hidden ones included (hidden folders count as one)."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(folder):
        found.update(os.path.join(dirpath, d) for d in dirnames if d.startswith("."))
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found.update(os.path.join(dirpath, f) for f in filenames)
    return found


def _accounting(case, volume) -> tuple[str, str]:
    """Every file in: loaded, in another series of the listing, or reported as skipped."""
    import numpy as np

    from medviewer.io import index_folder

    index = index_folder(case.target)
    listed = {h.path for s in index.all_series() for h in s.instances}
    reported = {s.path for s in index.skipped} | set(index.ignored)
    lost = _files_in(case.target) - listed - reported
    if lost:
        return "silent drop", f"not loaded, not reported: {sorted(os.path.basename(p) for p in lost)}"
    uids = set(volume.source_sop_instance_uids)
    loaded = [s for s in index.image_series() if {h.sop_instance_uid for h in s.instances} <= uids]
    if not loaded:
        return "silent drop", "the loaded slices match no series of the listing"
    series = loaded[0]
    if volume.source_frame_numbers is None and len(series.instances) != volume.shape[0]:
        return "silent drop", f"{len(series.instances)} slices in, {volume.shape[0]} loaded"
    dropped = {p for p, _ in volume.meta.get("dropped_files", ())}
    unsaid = {s.path for s in series.damaged} - dropped
    if unsaid:
        return "silent drop", f"dropped without saying: {sorted(unsaid)}"
    if not (np.all(np.isfinite(volume.spacing)) and np.all(np.isfinite(volume.origin))):
        return "foreign", f"loaded with geometry {volume.spacing} {volume.origin}"
    return "load", f"{volume.shape} {len(index.skipped)} skipped"


def _object(case) -> tuple[str, str]:
    from medviewer.core.errors import MedviewerError

    try:
        if case.kind == "image":
            from medviewer.io import read_image

            v = read_image(case.target)
            return "load", f"{v.shape} {v.spacing}"
        volume = _volumes[case.series_folder]
        if case.kind == "sr":
            from medviewer.io.measurements_sr import read_measurements_sr

            read = read_measurements_sr(case.target, volume)
            return "load", f"{len(read.rulers)} ruler(s)"
        from medviewer.io.annotations import describe_annotation, read_annotation

        describe_annotation(case.target)
        layer = read_annotation(case.target, volume)
        return "load", f"{layer.kind} {len(layer.segments)} segment(s)"
    except MedviewerError as exc:
        return _refusal(exc, case)
