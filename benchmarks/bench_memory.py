"""Memory figures for the benchmark scripts (Linux): a process's resident set size now, and the
peak resident set size of this process (and, if asked, of its waited-for children).

The scripts import it as ``bench_memory``: ``python benchmarks/x.py`` puts benchmarks/ first on
sys.path (and spawned child processes get the same sys.path).
"""

from __future__ import annotations

import resource


def rss_mb(pid: int | str = "self") -> float:
    """VmRSS of process ``pid`` (default: this one), in MB; 0.0 if the kernel does not say."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb(children: bool = False) -> float:
    """Peak RSS of this process in MB; with ``children``, the larger of it and the peak of any
    child process waited for (for a model run in a worker process)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if children:
        peak = max(peak, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return peak / 1024
