"""`medviewer batch` over the 24 STS series: a plain loop in one process (baseline) against the
local process pool and a Dask LocalCluster, same plugin, same jobs, same machine.

    python benchmarks/batch.py [--plugin lesion-density] [--param KEY=VALUE] [--workers 2] [--repeat 3]
    python benchmarks/batch.py --click-sts [--cases STS_001,...] [--workers 2] [--param engine=auto]

Each measurement runs every study (``force``) into a fresh output folder and prints the median of
``--repeat`` runs in seconds, with studies per second. The Dask figure excludes the cluster's
start-up (printed separately: a cluster is started once and reused); the pool's figure includes
its worker processes' start-up (the pool is made per batch). Series come from
$MEDVIEWER_DATA/sts (default ../shared/data/sts).

``--click-sts`` runs `medviewer batch click-segment` once over the sarcomas (all 44 by default),
twice: seeds from a points CSV (each expert RTSTRUCT's deepest interior point) and from measurement
SRs (a length along the expert contour's longest axial diameter, written with medviewer's SR
writer); it prints each lesion's Dice against the expert contour, its volume and diameters from
the cohort table, and the seconds each run took.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plugin", default="lesion-density")
    ap.add_argument("--param", action="append", default=[])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--click-sts", action="store_true", help="click-segment over the sarcomas (CSV and SR seeds)")
    ap.add_argument("--cases", default="", help="with --click-sts: which cases (default: all)")
    ap.add_argument("--seeds", default="csv,sr", help="with --click-sts: seeds from a points CSV, SRs, or both")
    args = ap.parse_args()
    if args.click_sts:
        return click_sts(args)

    from distributed import LocalCluster

    from medviewer.batch import jobs_from_folder, run_batch, run_job
    from medviewer.batch.core import settle
    from medviewer.plugins.headless import parse_params, resolve_params
    from medviewer.plugins.registry import get_manifest

    data = os.environ.get("MEDVIEWER_DATA") or os.path.join(os.path.dirname(ROOT), "shared", "data")
    sts = os.path.join(data, "sts")
    manifest = get_manifest(args.plugin)
    params = resolve_params(manifest, parse_params(args.param))
    work = tempfile.mkdtemp(prefix="medviewer-batch-bench-")
    try:
        def fresh_jobs(tag: str):
            out = os.path.join(work, tag)
            shutil.rmtree(out, ignore_errors=True)
            return jobs_from_folder(sts, manifest, params, out), out

        jobs, _ = fresh_jobs("probe")
        print(f"{len(jobs)} series from {sts}, plugin {manifest.id} {dict(params)}, {args.workers} workers, "
              f"{os.cpu_count()} CPUs, median of {args.repeat}")

        def loop():
            jobs, out = fresh_jobs("loop")
            t = time.perf_counter()
            rows = [settle(j, run_job(j)) for j in jobs]
            assert all(r["status"] == "done" for r in rows), rows
            return time.perf_counter() - t

        def batch(tag: str, **how):
            """Seconds for one run_batch of every study; ``how``: workers= or scheduler=."""
            jobs, out = fresh_jobs(tag)
            t = time.perf_counter()
            s = run_batch(jobs, out, force=True, progress=False, **how)
            assert s.done == len(jobs), s.rows
            return time.perf_counter() - t

        def pool():
            return batch("pool", workers=args.workers)

        t = time.perf_counter()
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None)
        startup = time.perf_counter() - t

        def dask():
            return batch("dask", scheduler=cluster.scheduler_address)

        try:
            results = {}
            for name, fn in (("loop in one process (baseline)", loop), (f"process pool, {args.workers} workers", pool),
                             (f"Dask LocalCluster, {args.workers} workers", dask)):
                results[name] = statistics.median(fn() for _ in range(args.repeat))
        finally:
            cluster.close()
        base = results["loop in one process (baseline)"]
        for name, sec in results.items():
            print(f"{name:<34} {sec:7.2f} s  {len(jobs) / sec:6.2f} studies/s  x{base / sec:4.2f} vs baseline")
        print(f"(Dask LocalCluster start-up, not included above: {startup:.2f} s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _sts_cohort(sts: str, cases: list[str], root: str) -> dict:
    """root/<case>/image linked to the shared series, an SR of the expert's long axis beside it;
    each case's volume, expert mask and deepest interior point."""
    import numpy as np

    from medviewer.core.document import Ruler
    from medviewer.core.measures import measure_segments
    from medviewer.export.measurements import write_measurements
    from medviewer.io import load_volume
    from medviewer.io.annotations import read_rtstruct
    from medviewer.segmentation.guidance import deepest_point

    found = {}
    for case in cases:
        image = os.path.join(root, "in", case, "image")
        os.makedirs(image)
        for f in sorted(os.listdir(os.path.join(sts, case, "image"))):
            os.symlink(os.path.join(sts, case, "image", f), os.path.join(image, f))
        volume = load_volume(image)
        truth = read_rtstruct(os.path.join(sts, case, "RS.dcm"), volume, roi_names="GTV_Mass_CT")
        mask = truth.array > 0
        deepest = volume.voxel_to_patient(deepest_point(mask, np.asarray(volume.spacing)[::-1])[0])
        m = measure_segments(volume, truth.with_array(mask.astype(np.uint8)))[0]
        ruler = Ruler(*(tuple(float(c) for c in p) for p in m.long_axis_endpoints_mm), label="sarcoma")
        write_measurements(volume, [ruler], os.path.join(root, "in", case, "sr.dcm"), observer_name="bench^")
        found[case] = (volume, mask, deepest, m)
    return found


def click_sts(args) -> int:
    """`medviewer batch click-segment` over the sarcomas, seeds from a CSV then from SRs."""
    import csv

    import numpy as np

    from medviewer.cli import main as cli
    from medviewer.io.annotations import read_seg_layer

    data = os.environ.get("MEDVIEWER_DATA") or os.path.join(os.path.dirname(ROOT), "shared", "data")
    sts = os.path.join(data, "sts")
    cases = args.cases.split(",") if args.cases else sorted(c for c in os.listdir(sts) if c.startswith("STS_"))
    work = tempfile.mkdtemp(prefix="medviewer-click-batch-")
    try:
        found = _sts_cohort(sts, cases, work)
        points = os.path.join(work, "points.csv")
        with open(points, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["study", "x", "y", "z", "lesion"])
            for case, (_, _, deepest, _) in found.items():
                w.writerow([case, *(f"{v:.2f}" for v in deepest), "sarcoma"])
        sources = {"csv": ("points CSV", ["--points", points]), "sr": ("measurement SRs", ["--seeds-from-sr"])}
        for how, seeds in (sources[s] for s in args.seeds.split(",")):
            out = os.path.join(work, "out-" + seeds[0].strip("-"))
            t = time.perf_counter()
            code = cli(["batch", "click-segment", "--input", os.path.join(work, "in"), *seeds, "--out", out,
                        "--workers", str(args.workers), "--device", "cpu", "--quiet",
                        *sum((["--param", p] for p in args.param), [])])
            seconds = time.perf_counter() - t
            with open(os.path.join(out, "lesions.csv"), newline="") as fh:
                table = list(csv.DictReader(fh))
            dices = []
            print(f"\nseeds from {how}: exit {code}, {len(table)} lesions in {seconds:.1f} s")
            print(f"{'study':12s} {'dice':>5s} {'mL':>8s} {'expert mL':>9s} {'long':>6s} {'expert':>6s} "
                  f"{'short':>6s}  algorithm")
            for row in table:
                volume, mask, _, m = found[row["study"].rsplit("_", 1)[0]]
                seg = np.asarray(read_seg_layer(row["seg"], volume).labels.array) > 0
                dice = 2 * float((seg & mask).sum()) / float(seg.sum() + mask.sum())
                dices.append(dice)
                print(f"{row['study']:12s} {dice:5.3f} {float(row['volume_ml']):8.1f} {m.volume_ml:9.1f} "
                      f"{float(row['long_axis_mm']):6.1f} {m.long_axis_mm:6.1f} {float(row['short_axis_mm']):6.1f}  "
                      f"{row['algorithm']}")
            if dices:
                print(f"Dice median {statistics.median(dices):.3f}, mean {statistics.mean(dices):.3f}, "
                      f"min {min(dices):.3f} over {len(dices)} lesions")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
