"""Cohort batch runs: one plugin over many studies, in a local process pool or on a Dask cluster.

::

    jobs = jobs_from_folder("cohort/", manifest, params, "out/")        # one job per image series
    summary = run_batch(jobs, "out/", workers=4)                          # local process pool
    summary = run_batch(jobs, "out/", scheduler="tcp://host:8786")        # Dask distributed

Each job (:class:`BatchJob`, plain picklable data) is run by :func:`run_job`, a top-level
function that loads the series, runs the plugin in the worker's own process (a thread, never a
nested child process) and writes ``OUT/<patient>_<series>/result.<ext>`` atomically, a ``log.txt``
and a ``done.json`` marker. A failing study gives a ``failed`` row, never stops the others.
Finished studies (marker and output present) are skipped on the next run unless ``force``.
The summary CSV is rewritten atomically after every finished study.

Imports no Qt, VTK or torch (plugins import theirs when they run, in the workers).
"""

from medviewer.batch.core import (
    SUMMARY_FIELDS, BatchJob, BatchSummary, is_done, jobs_from_folder, jobs_from_pacs, run_batch, run_job,
)

__all__ = ["SUMMARY_FIELDS", "BatchJob", "BatchSummary", "is_done", "jobs_from_folder", "jobs_from_pacs",
           "run_batch", "run_job"]
