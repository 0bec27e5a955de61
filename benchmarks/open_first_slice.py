"""Open a 300-slice DICOM series in a running window: time to the first slice, and how long the
GUI thread froze (during the open, the click engine's load, and a click).

    python benchmarks/open_first_slice.py [--repeat 3] [--slices 300] [--keep FOLDER]

The 300-slice series is made by resampling a real one (Lung-PET-CT-Dx A0001 series 2, 512 x 512 x
64 at 5 mm, from $MEDVIEWER_DATA) along z to 300 slices, written as DICOM into a temporary folder
(removed at the end unless --keep; never into the repository).

Freeze is measured as the tests measure it (tests/ui/test_freeze.py): a QTimer ticking every
``TICK_MS`` on the GUI thread; the longest gap between two ticks is the longest freeze. Figures
are medians over --repeat windows, each opened in a fresh window in this process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

TICK_MS = 10


def make_series(source: str, out: str, slices: int = 300) -> str:
    """Resample the DICOM series in ``source`` along its slice axis to ``slices`` slices (linear
    between the two nearest source slices) and write it into ``out`` as a new series (new UIDs,
    positions, instance numbers; every other header as the nearest source slice's)."""
    import numpy as np
    import pydicom
    from pydicom.uid import generate_uid

    from medviewer.io import index_folder
    from medviewer.io.dicom_series import analyze_series

    entry = index_folder(source).image_series()[0]
    headers = analyze_series(entry).instances
    datasets = [pydicom.dcmread(h.path) for h in headers]
    pixels = np.stack([d.pixel_array.astype(np.float32) for d in datasets])
    first = np.asarray(datasets[0].ImagePositionPatient, float)
    last = np.asarray(datasets[-1].ImagePositionPatient, float)
    series_uid = generate_uid()
    os.makedirs(out, exist_ok=True)
    for k, t in enumerate(np.linspace(0.0, len(datasets) - 1, slices)):
        lo = int(np.floor(t))
        hi = min(lo + 1, len(datasets) - 1)
        w = t - lo
        ds = datasets[int(round(t))].copy()
        value = (1 - w) * pixels[lo] + w * pixels[hi]
        ds.PixelData = np.round(value).astype(ds.pixel_array.dtype).tobytes()
        position = first + (last - first) * t / (len(datasets) - 1)
        ds.ImagePositionPatient = [f"{v:.4f}" for v in position]
        ds.SliceLocation = f"{position[2]:.4f}"
        ds.SliceThickness = f"{abs(last[2] - first[2]) / (slices - 1):.4f}"
        ds.InstanceNumber = k + 1
        ds.SeriesInstanceUID = series_uid
        ds.SeriesDescription = f"resampled to {slices} slices"
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(os.path.join(out, f"{k + 1:04d}.dcm"))
    return out


def _meter_class(here: str):
    """FreezeMeter from this checkout's medviewer/ui/tasks.py, whichever medviewer is measured
    (--root), so that the baseline is measured with the same meter."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_freeze_meter", os.path.join(here, "medviewer", "ui", "tasks.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FreezeMeter


def _wait(app, until, timeout: float) -> float | None:
    """Turn the event loop until ``until()``; the seconds that took, None on timeout."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        app.processEvents()
        if until():
            return time.perf_counter() - started
        time.sleep(0.002)
    return None


def _settle(app, seconds: float) -> None:
    _wait(app, lambda: False, seconds)


def _window(tmp: str):
    from PySide6.QtCore import QSettings

    from medviewer.ui.main_window import MainWindow

    w = MainWindow(settings=QSettings(os.path.join(tmp, "settings.ini"), QSettings.IniFormat), quiet=True)
    w.resize(1280, 900)
    w.show()
    return w


def _shown(window) -> bool:
    """The axial view draws an image (the first slice is on screen once this turn renders)."""
    view = window.grid.views["axial"]
    return window.document.image is not None and bool(view.image_actor.GetVisibility())


def measure_open(app, Meter, folder: str, layout: str, tmp: str) -> dict:
    """Open ``folder`` in a running window laid out as ``layout`` ('2x2', or '1x1' axial): seconds
    to the first slice and to the whole series, and the longest GUI gap until 2 s after that."""
    window = _window(tmp)
    _settle(app, 1.0)
    if layout == "1x1":
        window.set_layout("1x1", "axial")
        _settle(app, 0.3)
    loaded = []
    window.volume_loaded.connect(loaded.append)
    meter = Meter(TICK_MS).start()
    started = time.perf_counter()
    window.open_path(folder)
    first = _wait(app, lambda: _shown(window), 120)
    _wait(app, lambda: bool(loaded), 120)
    whole = time.perf_counter() - started
    _settle(app, 2.0)
    meter.stop()
    figures = {"first_slice_s": first, "whole_series_s": whole, "open_longest_gap_ms": meter.longest_ms}
    window.close()
    window.deleteLater()
    _settle(app, 0.2)
    return figures


def measure_engine_and_click(app, Meter, demo: str, engine: str, tmp: str) -> dict:
    """On the demo study: the longest GUI gap while the click tool loads ``engine``, and while a
    click on lesion 1 runs (until its segment is drawn)."""
    import json

    window = _window(tmp)
    loaded = []
    window.volume_loaded.connect(loaded.append)
    window.open_path(demo)
    _wait(app, lambda: bool(loaded), 120)
    _settle(app, 2.0)
    editor = window.segment_editor
    editor.engine_combo.setCurrentText(engine)
    ready = []
    editor.engine_ready.connect(lambda *a: ready.append(a))
    meter = Meter(TICK_MS).start()
    editor.set_tool("click")
    _wait(app, lambda: bool(ready), 180)
    _settle(app, 0.5)
    meter.stop()
    figures = {"engine_load_longest_gap_ms": meter.longest_ms}
    with open(os.path.join(demo, "lesions.json")) as fh:
        centre = json.load(fh)["lesions"][0]["center_mm"]
    results = []
    editor.click_result.connect(results.append)
    editor.click_failed.connect(results.append)
    meter = Meter(TICK_MS).start()
    started = time.perf_counter()
    editor.add_click(centre)
    _wait(app, lambda: bool(results), 180)
    figures["click_s"] = time.perf_counter() - started
    _settle(app, 1.0)
    meter.stop()
    figures["click_longest_gap_ms"] = meter.longest_ms
    editor._unexported = False   # nothing to ask about on close
    window.close()
    window.deleteLater()
    _settle(app, 0.2)
    return figures


def main() -> None:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--series", help="a DICOM series to open as it is (no resampling)")
    parser.add_argument("--keep", help="write the resampled series here and keep it")
    parser.add_argument("--engine", default="learned", help="the click engine loaded and clicked with")
    parser.add_argument("--root", default=here,
                        help="the medviewer checkout measured (another, e.g. main, for a baseline)")
    parser.add_argument("--name", default="this checkout", help="what the figures are called")
    args = parser.parse_args()
    sys.path.insert(0, os.path.abspath(args.root))
    data = os.environ.get("MEDVIEWER_DATA", os.path.join(here, "..", "shared", "data"))

    from medviewer.ui.app import application

    app = application()
    Meter = _meter_class(here)
    tmp = tempfile.mkdtemp(prefix="medviewer-open-bench-")
    try:
        folder = args.series
        if folder is None:
            folder = args.keep or os.path.join(tmp, "series")
            if not os.path.isdir(folder) or not os.listdir(folder):
                make_series(os.path.join(data, "lung-pet-ct-dx", "A0001", "series-2-5mm-L"), folder, args.slices)
        from medviewer.io.demo_study import write_demo_study

        demo = write_demo_study(os.path.join(tmp, "demo"))
        runs: dict[str, list] = {}
        for _ in range(args.repeat):
            for layout in ("2x2", "1x1"):
                for key, value in measure_open(app, Meter, folder, layout, tmp).items():
                    runs.setdefault(f"{layout} {key}", []).append(value)
        for key, value in measure_engine_and_click(app, Meter, demo, args.engine, tmp).items():
            runs.setdefault(key, []).append(value)
        print(f"{args.name} ({os.path.abspath(args.root)}), {args.repeat} run(s), medians; tick {TICK_MS} ms")
        for key, values in runs.items():
            good = [v for v in values if v is not None]
            median = statistics.median(good) if good else float("nan")
            unit = "ms" if key.endswith("_ms") else "s"
            print(f"  {key:36s} {median:9.2f} {unit}   (runs: {', '.join(f'{v:.2f}' for v in good)})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
