"""Cohort batch runs: one plugin over many studies, in a local process pool or on a Dask cluster.

::

    jobs = jobs_from_folder("cohort/", manifest, params, "out/")        # one job per image series
    summary = run_batch(jobs, "out/", workers=4)                          # local process pool
    summary = run_batch(jobs, "out/", scheduler="tcp://host:8786")        # Dask distributed

Each job (:class:`BatchJob`, plain picklable data) is run by :func:`run_job`, a top-level
function that loads the series, runs the plugin in the worker's own process (a thread, never a
nested child process) and writes its output into a staging folder of its attempt, appending to
the study's ``log.txt``; the client alone moves the output to ``OUT/<patient>_<series>/`` and
writes the ``done.json`` (or ``failed.json``) marker, so the disk never says more than the
summary. A failing study gives a ``failed`` row, never stops the others. A study is skipped on
the next run (unless ``force``) only when its marker matches the series (UID, instances), the
plugin's code hash and parameters. The summary CSV lists every study in OUT and is rewritten
atomically after every finished study. :mod:`medviewer.batch.click` runs click-segment over a
cohort from seed points (a CSV, or the measurements in the studies' SRs). See docs/batch.md.

Imports no Qt, VTK or torch (plugins import theirs when they run, in the workers).
"""

from medviewer.batch.core import (
    SUMMARY_FIELDS, BatchJob, BatchSummary, check_destination, is_done, jobs_from_folder, jobs_from_pacs,
    plugin_code_hash, run_batch, run_job,
)

__all__ = ["SUMMARY_FIELDS", "BatchJob", "BatchSummary", "check_destination", "is_done", "jobs_from_folder",
           "jobs_from_pacs", "plugin_code_hash", "run_batch", "run_job"]
