"""`medviewer batch click-segment`: the click engine over a cohort, one SEG per study.

Each lesion is a group of seed points in patient LPS mm. They come from a points CSV (one row
per point: the study, optionally the series, x, y, z, optionally the lesion's name and whether the
point is positive) or from the lesions already measured in the study's DICOM SRs (TID 1500, as
the measure tool and OHIF write them, read by :mod:`medviewer.io.measurements_sr`): one positive
click at each measurement's middle (a length's midpoint, where a bidirectional's axes cross, an
ellipse's centre). A worker runs the plugin once per lesion on the study's series, writes one
DICOM SEG with a segment per lesion (on the series' own grid, referencing its images) and a
``lesions.json`` of each lesion's volume and diameters; :func:`write_cohort_table` gathers those
of every finished study into ``OUT/lesions.csv``.

Imports no Qt, VTK or torch (the plugin imports its engine when it runs, in the worker).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np

from medviewer.core.errors import MedviewerError

LESIONS_FILE = "lesions.json"
COHORT_TABLE = "lesions.csv"
COHORT_FIELDS = ("study", "patient_id", "series_uid", "segment", "lesion", "seeds", "seed_x_mm", "seed_y_mm",
                 "seed_z_mm", "volume_ml", "long_axis_mm", "short_axis_mm", "voxels", "algorithm",
                 "measured_in_sr", "note", "seg")
COLUMNS = {  # a points CSV's columns (first name found wins), case and spaces ignored
    "study": ("study", "study_folder", "folder", "study_uid", "study_instance_uid", "patient", "patient_id"),
    "series": ("series", "series_uid", "series_instance_uid"),
    "x": ("x", "x_mm"), "y": ("y", "y_mm"), "z": ("z", "z_mm"),
    "lesion": ("lesion", "label", "name"),
    "positive": ("positive", "is_positive", "sign", "type"),
}
YES = {"", "1", "true", "yes", "y", "positive", "pos", "+"}
NO = {"0", "false", "no", "n", "negative", "neg", "-"}
COLOURS = ((255, 80, 80), (80, 200, 255), (120, 230, 90), (250, 200, 60), (200, 120, 255), (255, 140, 200))


@dataclass(frozen=True)
class LesionSeeds:
    """One lesion's seed points (LPS mm), where they came from ('csv' or 'sr') and, for an SR's
    measurement, what it measured ('length 41.2 mm')."""

    name: str
    positive: tuple[tuple[float, float, float], ...]
    negative: tuple[tuple[float, float, float], ...] = ()
    source: str = "csv"
    measured: str = ""


@dataclass(frozen=True)
class PointRow:
    line: int
    study: str
    series: str
    point: tuple[float, float, float]
    lesion: str
    positive: bool


# ---- the points CSV ------------------------------------------------------------------------------
def read_points_csv(path: str) -> list[PointRow]:
    """The seed points of a points CSV; a MedviewerError naming the file and line otherwise."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            text = fh.read()
    except OSError as exc:
        raise MedviewerError(f"cannot read the points CSV ({exc.strerror or exc})", path) from None
    reader = csv.DictReader(io.StringIO(text))
    found = {_key(h): h for h in reader.fieldnames or ()}
    columns = {name: next((found[c] for c in choices if c in found), None) for name, choices in COLUMNS.items()}
    missing = [n for n in ("study", "x", "y", "z") if columns[n] is None]
    if missing:
        raise MedviewerError(f"the points CSV needs the column(s) {', '.join(missing)} "
                             "(study, optional series, x, y, z in patient mm, optional lesion and positive)", path)
    rows = [_point_row(path, n, record, columns) for n, record in enumerate(reader, start=2)]
    if not rows:
        raise MedviewerError("the points CSV holds no points", path)
    return rows


def _key(header: str | None) -> str:
    return (header or "").strip().lower().replace(" ", "_")


def _point_row(path: str, line: int, record: dict, columns: dict) -> PointRow:
    def cell(name: str) -> str:
        return (record.get(columns[name]) or "").strip() if columns[name] else ""

    try:
        point = tuple(float(cell(axis)) for axis in "xyz")
    except ValueError:
        raise MedviewerError(f"line {line}: x, y and z must be numbers (mm)", path) from None
    if not all(math.isfinite(c) for c in point):
        raise MedviewerError(f"line {line}: x, y and z must be finite numbers (mm)", path)
    sign = cell("positive").lower()
    if sign not in YES | NO:
        raise MedviewerError(f"line {line}: positive must be 1/0, true/false or +/-, got {sign!r}", path)
    if not cell("study"):
        raise MedviewerError(f"line {line}: no study", path)
    return PointRow(line, cell("study"), cell("series"), point, cell("lesion"), sign in YES)  # type: ignore[arg-type]


def _matches(job, row: PointRow, root: str | None) -> bool:
    study = row.study
    parts: list[str] = []
    if root:
        rel = os.path.relpath(job.path, root)
        if not rel.startswith(".."):
            parts = rel.split(os.sep) + [rel]
    if study not in (job.study, job.study_uid, job.patient_id, *parts):
        return False
    return not row.series or row.series in (job.series_uid, job.series, job.study)


def assign_points(jobs: Sequence, rows: Sequence[PointRow], path: str, root: str | None = None) -> dict[str, list]:
    """Each job's lesions (by study name) from the points CSV's rows; every row must find exactly
    one series (a MedviewerError names the line otherwise)."""
    grouped: dict[str, dict[str, dict[str, list]]] = {}
    for row in rows:
        found = [job for job in jobs if _matches(job, row, root)]
        if not found:
            raise MedviewerError(f"line {row.line}: no image series for study {row.study!r}"
                                 + (f" and series {row.series!r}" if row.series else ""), path)
        if len(found) > 1:
            raise MedviewerError(f"line {row.line}: study {row.study!r} has {len(found)} image series "
                                 f"({', '.join(j.study for j in found)}): give the series column", path)
        lesions = grouped.setdefault(found[0].study, {})
        name = row.lesion or (f"lesion {sum(1 for k in lesions if k.startswith('lesion '))+ 1}" if row.positive else "")
        if not name:
            raise MedviewerError(f"line {row.line}: a negative point needs the lesion it belongs to "
                                 "(lesion column)", path)
        lesion = lesions.setdefault(name, {"positive": [], "negative": []})
        lesion["positive" if row.positive else "negative"].append(row.point)
    out = {}
    for study, lesions in grouped.items():
        for name, pts in lesions.items():
            if not pts["positive"]:
                raise MedviewerError(f"lesion {name!r} of {study} has no positive point", path)
        out[study] = [LesionSeeds(name, tuple(p["positive"]), tuple(p["negative"])) for name, p in lesions.items()]
    return out


def click_jobs(jobs: Sequence, *, points: str | None, from_sr: bool, root: str | None = None):
    """The jobs that have seeds: those the points CSV names (their lesions attached), and with
    ``from_sr`` those whose study holds an SR. Returns (jobs, the studies left out)."""
    if not points and not from_sr:
        raise MedviewerError("click-segment in a batch needs seed points: --points CSV and/or --seeds-from-sr")
    by_study = assign_points(jobs, read_points_csv(points), points, root) if points else {}
    kept, left = [], []
    for job in jobs:
        lesions = tuple(by_study.get(job.study, ()))
        if lesions or (from_sr and job.sr_files):
            kept.append(replace(job, lesions=lesions, seeds_from_sr=from_sr, seg=True))
        else:
            left.append(job.study)
    return kept, left


# ---- seeds from measurement SRs -------------------------------------------------------------------
def seeds_from_srs(paths: Sequence[str], volume, log: Callable[[str], None]) -> list[LesionSeeds]:
    """One lesion per length, bidirectional or ellipse that the SRs place on ``volume``, clicked
    at its middle."""
    from medviewer.io.measurements_sr import read_measurements_sr

    seeds: list[LesionSeeds] = []
    for path in sorted(paths):
        try:
            read = read_measurements_sr(path, volume)
        except MedviewerError as exc:
            log(f"SR {os.path.basename(path)} left out: {exc.message}")
            continue
        for warning in read.warnings:
            log(f"SR {os.path.basename(path)}: {warning}")
        for r in read.rulers:
            middle = (np.asarray(r.start) + np.asarray(r.end)) / 2
            length = float(np.linalg.norm(np.subtract(r.end, r.start)))
            seeds.append(_sr_seed(r.label or f"length {len(seeds) + 1}", middle, f"length {length:.1f} mm"))
        for b in read.bidirectionals:
            seeds.append(_sr_seed(b.label or f"bidirectional {len(seeds) + 1}", _crossing(b),
                                  f"bidirectional {b.long_mm:.1f} x {b.short_mm:.1f} mm"))
        for e in read.ellipses:
            seeds.append(_sr_seed(e.label or f"ellipse {len(seeds) + 1}", np.asarray(e.center), "ellipse"))
        log(f"SR {os.path.basename(path)}: {len(read.rulers)} length(s), {len(read.bidirectionals)} "
            f"bidirectional(s), {len(read.ellipses)} ellipse(s) on this series")
    return seeds


def _sr_seed(name: str, point, measured: str) -> LesionSeeds:
    return LesionSeeds(name, (tuple(float(c) for c in point),), (), "sr", measured)


def _crossing(b) -> np.ndarray:
    """Where a bidirectional's short axis crosses its long axis (the middle of the measurement)."""
    a, e = np.asarray(b.long_start, dtype=float), np.asarray(b.long_end, dtype=float)
    s = (np.asarray(b.short_start, dtype=float) + np.asarray(b.short_end, dtype=float)) / 2
    u = e - a
    t = float(np.clip(np.dot(s - a, u) / max(float(np.dot(u, u)), 1e-12), 0.0, 1.0))
    return a + t * u


# ---- one study (in the worker) --------------------------------------------------------------------
def run_click_job(job, staged: str, log: Callable[[str], None], *, on_event=None, on_loaded=None) -> str:
    """Segment every lesion of ``job`` on its series, write the SEG to ``staged`` and the lesions'
    measures beside it; the one-line summary."""
    from medviewer.io import load_volume

    volume = load_volume(job.path, series=job.series)
    if on_loaded is not None:
        on_loaded(volume)
    lesions = list(job.lesions) + (seeds_from_srs(job.sr_files, volume, log) if job.seeds_from_sr else [])
    if not lesions:
        raise MedviewerError("no seed points for this series (none in the points CSV, no measurement on it in "
                             "the study's SRs)")
    for lesion in lesions:
        for p in lesion.positive + lesion.negative:
            if not volume.contains_point(p):
                raise MedviewerError(f"lesion {lesion.name!r}: seed {', '.join(f'{c:.1f}' for c in p)} mm lies "
                                     "outside the image")
    labels, rows = _segment_lesions(job, volume, lesions, on_event, log)
    segments = _segments(job, rows)
    if not segments:
        raise MedviewerError(f"every lesion's mask is empty ({len(rows)} lesion(s)): no SEG written")
    from medviewer.core.measures import measure_segments
    from medviewer.export.seg import write_seg

    label_volume = volume.with_array(labels, modality="SEG")
    for row, m in zip([r for r in rows if r["voxels"]], measure_segments(volume, label_volume)):
        row.update(volume_ml=round(m.volume_ml, 3), long_axis_mm=round(m.long_axis_mm, 2),
                   short_axis_mm=round(m.short_axis_mm, 2))
    write_seg(volume, label_volume, segments, staged, force=True,
              series_description=f"medviewer {job.manifest.id} batch")
    from medviewer.core.atomic import write_text

    write_text(os.path.join(os.path.dirname(staged), LESIONS_FILE),
               json.dumps({"study": job.study, "patient_id": job.patient_id, "series_uid": job.series_uid,
                           "lesions": rows}, indent=2), force=True)
    total = sum(r.get("volume_ml", 0.0) for r in rows)
    return (f"Wrote a DICOM SEG of {len(segments)} lesion(s) ({total:.1f} mL in all) to {staged}"
            + "".join(f"\nwarning: {r['lesion']}: {r['note']}" for r in rows if r["note"]))


def _segment_lesions(job, volume, lesions: Sequence[LesionSeeds], on_event, log):
    """Each lesion's mask as label n (n = its place, 1 first); voxels two lesions claim stay with
    the earlier one. Returns the label array and a row per lesion."""
    from medviewer.plugins.api import Prompts, Request
    from medviewer.plugins.runner import Runner

    runner = Runner(force_cpu=job.device == "cpu")
    labels = np.zeros(volume.shape, dtype=np.uint16)
    rows = []
    for n, lesion in enumerate(lesions, start=1):
        log(f"lesion {n} ({lesion.name}, seeds from {lesion.source}): {len(lesion.positive)} positive, "
            f"{len(lesion.negative)} negative point(s)")
        request = Request(volume, Prompts(lesion.positive, lesion.negative), dict(job.params), job.device)
        result = runner.submit(job.manifest, request, on_event=on_event, isolation="thread",
                               timeout_s=job.timeout_s).result_or_raise()
        mask = np.asarray(result.label_map.array) > 0
        mine = mask & (labels == 0)
        labels[mine] = n
        notes = [result.note] if result.note else []
        if int(mine.sum()) < int(mask.sum()):
            notes.append(f"{int(mask.sum() - mine.sum())} voxel(s) shared with an earlier lesion kept there")
        if not mine.any():
            notes.append("empty mask: left out of the SEG")
        seed = lesion.positive[0]
        rows.append({"segment": n if mine.any() else "", "lesion": lesion.name, "seeds": lesion.source,
                     "seed_x_mm": round(seed[0], 2), "seed_y_mm": round(seed[1], 2), "seed_z_mm": round(seed[2], 2),
                     "volume_ml": 0.0, "long_axis_mm": 0.0, "short_axis_mm": 0.0, "voxels": int(mine.sum()),
                     "algorithm": result.algorithm or job.manifest.id, "measured_in_sr": lesion.measured,
                     "note": "; ".join(notes)})
    runner.shutdown()
    return labels, rows


def _segments(job, rows: list[dict]) -> list:
    from medviewer.core.segments import LESION, AlgorithmInfo, Segment

    return [Segment(int(r["segment"]), r["lesion"][:64] or f"lesion {r['segment']}",
                    COLOURS[(int(r["segment"]) - 1) % len(COLOURS)], type=LESION,
                    algorithm=AlgorithmInfo("SEMIAUTOMATIC", r["algorithm"][:64], str(job.manifest.version)))
            for r in rows if r["segment"]]


# ---- the cohort table (on the client) -------------------------------------------------------------
def write_cohort_table(out: str) -> str:
    """OUT/lesions.csv: one row per lesion of every finished study in ``out`` (its done.json lists
    a lesions.json), written atomically; returns its path."""
    from medviewer.batch.core import DONE_MARKER, _read_json, _write_atomic

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COHORT_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for name in sorted(os.listdir(out)):
        marker = _read_json(os.path.join(out, name, DONE_MARKER)) or {}
        if LESIONS_FILE not in marker.get("files", []):
            continue
        data = _read_json(os.path.join(out, name, LESIONS_FILE)) or {}
        seg = os.path.join(out, name, os.path.basename(marker.get("output", "result.dcm")))
        for row in data.get("lesions", []):
            writer.writerow({**row, "study": name, "patient_id": data.get("patient_id", ""),
                             "series_uid": data.get("series_uid", ""), "seg": seg})
    path = os.path.join(out, COHORT_TABLE)
    _write_atomic(path, buf.getvalue())
    return path
