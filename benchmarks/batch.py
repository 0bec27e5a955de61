"""`medviewer batch` over the 24 STS series: a plain loop in one process (baseline) against the
local process pool and a Dask LocalCluster, same plugin, same jobs, same machine.

    python benchmarks/batch.py [--plugin lesion-density] [--param KEY=VALUE] [--workers 2] [--repeat 3]

Each measurement runs every study (``force``) into a fresh output folder and prints the median of
``--repeat`` runs in seconds, with studies per second. The Dask figure excludes the cluster's
start-up (printed separately: a cluster is started once and reused); the pool's figure includes
its worker processes' start-up (the pool is made per batch). Series come from
$MEDVIEWER_DATA/sts (default ../shared/data/sts).
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
    args = ap.parse_args()

    from distributed import LocalCluster

    from medviewer.batch import jobs_from_folder, run_batch, run_job
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
            rows = [run_job(j) for j in jobs]
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


if __name__ == "__main__":
    sys.exit(main())
