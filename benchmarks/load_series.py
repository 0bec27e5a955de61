"""Index and load a DICOM series through medviewer, against a bare SimpleITK ImageSeriesReader.

    python benchmarks/load_series.py [SERIES_FOLDER] [--repeat 5]

Default series: $MEDVIEWER_DATA/lung-pet-ct-dx/A0001/series-2-5mm-L (512 x 512 x 64).
Prints medians of --repeat runs, the ratios medviewer / SimpleITK, and the peak memory of each
(peak RSS of a fresh process doing one run, minus that process's RSS after its imports).
Baselines: indexing vs sitk.ImageSeriesReader.GetGDCMSeriesFileNames (both read headers to order
the slices); loading vs sitk.ImageSeriesReader(...).Execute() + GetArrayFromImage with default
settings on the same files.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench_memory import peak_rss_mb, rss_mb  # noqa: E402  (benchmarks/, first on sys.path)


def _sitk_index(folder):
    import SimpleITK as sitk

    return sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder)


def _sitk_load(files):
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    return sitk.GetArrayFromImage(reader.Execute())


def _ours_index(folder):
    from medviewer.io import index_folder

    return index_folder(folder)


def _ours_load(index):
    from medviewer.io import load_series

    (series,) = index.image_series()
    return load_series(series).array


def _peak_child(kind: str, folder: str, queue) -> None:
    import numpy  # noqa: F401  (imports before the baseline RSS)
    import SimpleITK  # noqa: F401

    import medviewer.io  # noqa: F401

    files = _sitk_index(folder)
    index = _ours_index(folder)
    before = rss_mb()
    if kind == "sitk":
        _sitk_load(files)
    else:
        _ours_load(index)
    queue.put(peak_rss_mb() - before)


def peak_mb(kind: str, folder: str) -> float:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    p = ctx.Process(target=_peak_child, args=(kind, folder, queue))
    p.start()
    value = queue.get(timeout=300)
    p.join()
    return value


def timed(fn, arg, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    data = os.environ.get("MEDVIEWER_DATA", "../shared/data")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default=os.path.join(data, "lung-pet-ct-dx/A0001/series-2-5mm-L"))
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    files = _sitk_index(a.folder)
    index = _ours_index(a.folder)
    _sitk_load(files), _ours_load(index)  # warm the page cache and imports
    rows = [
        ("index (headers, order)", timed(_ours_index, a.folder, a.repeat), timed(_sitk_index, a.folder, a.repeat)),
        ("load (pixels -> array)", timed(_ours_load, index, a.repeat), timed(_sitk_load, files, a.repeat)),
    ]
    print(f"series: {a.folder} ({len(files)} files); median of {a.repeat} runs")
    print(f"{'step':26s} {'medviewer':>10s} {'SimpleITK':>10s} {'ratio':>7s}")
    for name, ours, base in rows:
        print(f"{name:26s} {ours:9.3f}s {base:9.3f}s {ours / base:6.2f}x")
    print(f"peak memory of one load: medviewer {peak_mb('ours', a.folder):.0f} MB, "
          f"SimpleITK {peak_mb('sitk', a.folder):.0f} MB")


if __name__ == "__main__":
    main()
