"""Fuzz the loaders with seeded mutations of real series; print the outcome table and peak memory.

    python benchmarks/fuzz_loader.py [--seed 1] [--cases 1000] [--first 0] [--time-limit 60]
                                     [--memory-limit-gb 2] [--workdir DIR] [--show 20]
    python benchmarks/fuzz_loader.py --seed 7 --case 123 --keep   # rerun one case, keep its files

Each case (tests/fuzz/mutations.py) is a folder of DICOM files from a small sts case, A0001 or
the JPEG 2000 series of compressed-ct with one to three damages, or a damaged NIfTI/NRRD/MHA,
SEG, RTSTRUCT or SR file; it runs in a forked child with RLIMIT_AS and a time limit
(tests/fuzz/fuzz_runner.py). Exit status 1 when any case ends in a failure outcome.
Needs $MEDVIEWER_DATA (the shared data).
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "fuzz"))

import fuzz_runner  # noqa: E402  (tests/fuzz, put on sys.path above)
import mutations  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cases", type=int, default=1000)
    p.add_argument("--first", type=int, default=0, help="number of the first case")
    p.add_argument("--case", type=int, help="run this one case only (with --keep, its files stay)")
    p.add_argument("--time-limit", type=float, default=fuzz_runner.TIME_LIMIT_S, help="seconds per case")
    p.add_argument("--memory-limit-gb", type=float, default=2.0)
    p.add_argument("--workdir", help="where cases are built (default: a temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep each case's files")
    p.add_argument("--show", type=int, default=20, help="failures to print in full")
    args = p.parse_args()
    if not mutations.data_available():
        print(f"no shared data under {mutations.DATA} (set MEDVIEWER_DATA)", file=sys.stderr)
        return 2
    fuzz_runner._quiet_libraries()
    workdir = args.workdir or tempfile.mkdtemp(prefix="medviewer-fuzz-")
    os.makedirs(workdir, exist_ok=True)
    sources = mutations.prepare_sources(workdir)
    numbers = [args.case] if args.case is not None else range(args.first, args.first + args.cases)
    limit = int(args.memory_limit_gb * (1 << 30))
    counts: collections.Counter = collections.Counter()
    by_kind: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    failures = []
    peak = (0.0, None)
    started = time.perf_counter()
    for n in numbers:
        try:
            case = mutations.make_case(sources, args.seed, n, workdir)
        except Exception as exc:  # noqa: BLE001  (a generator bug: say so, go on with the others)
            print(f"case {n} could not be built: {type(exc).__name__}: {exc}", file=sys.stderr)
            counts["not built"] += 1
            continue
        result = fuzz_runner.run_case(case, args.time_limit, limit)
        counts[result.outcome] += 1
        by_kind[case.kind][result.outcome] += 1
        if result.peak_mb > peak[0]:
            peak = (result.peak_mb, case)
        if result.outcome in fuzz_runner.FAILURES:
            failures.append((case, result))
        if args.case is not None:
            print(f"{case.name}: {case.description}\n  -> {result.outcome} ({result.seconds:.1f} s, "
                  f"{result.peak_mb:.0f} MB): {result.detail}\n  files: {case.target}")
        if not args.keep:
            mutations._remove(os.path.dirname(case.target) if case.kind != "dicom" else case.target)
        done = sum(counts.values())
        if done % 50 == 0:
            print(f"  {done} cases, {time.perf_counter() - started:.0f} s, failures {len(failures)}",
                  file=sys.stderr, flush=True)
    _table(args, counts, by_kind, failures, peak, time.perf_counter() - started, limit)
    return 1 if failures else 0


def _table(args, counts, by_kind, failures, peak, seconds, limit) -> None:
    total = sum(n for outcome, n in counts.items() if outcome != "not built")
    kinds = sorted(by_kind)
    print(f"\nLoader fuzz, seed {args.seed}: {total} cases in {seconds:.0f} s "
          f"(limits per case: {args.time_limit:.0f} s, RLIMIT_AS {limit / 2**30:.1f} GiB)")
    print(f"{'outcome':<14}{'cases':>7}{'share':>8}  " + "".join(f"{k:>9}" for k in kinds))
    for outcome in fuzz_runner.OUTCOMES:
        n = counts.get(outcome, 0)
        print(f"{outcome:<14}{n:>7}{100 * n / max(total, 1):>7.1f}%  "
              + "".join(f"{by_kind[k].get(outcome, 0):>9}" for k in kinds))
    if counts.get("not built"):
        print(f"{'not built':<14}{counts['not built']:>7}  (generator errors, listed above)")
    mb, case = peak
    print(f"peak memory of a case: {mb:.0f} MB" + (f" ({case.name}: {case.description[:100]})" if case else ""))
    for case, result in failures[:args.show]:
        print(f"\n{case.name} [{result.outcome}]: {case.description}\n  {result.detail[-1500:]}")


if __name__ == "__main__":
    sys.exit(main())
