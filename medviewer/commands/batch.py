"""`medviewer batch PLUGIN (--input FOLDER | --pacs SERVER --query KEY=VALUE ...) --out DIR`:
run a plugin over every image series of a cohort, in a local process pool or on a Dask cluster.

Each series gets OUT/<patient>_<series number>/ with result.nii.gz or result.json (result.dcm
with --format seg), log.txt and a done.json marker; OUT/summary.csv has one row per study and is
rewritten after each one, and lists every study in OUT (earlier runs' too). Running the same
command again skips the studies finished from the same series with the same plugin code and
parameters (--force runs them again). A study that fails is logged and reported; the others
carry on. A PACS given to --send-to-pacs is checked before the first study.

click-segment runs with seed points: --points CSV (columns study, series (optional), x, y, z in
patient mm, lesion and positive (optional)) and/or --seeds-from-sr (a click at the middle of
each length, bidirectional or ellipse measured in the study's SRs); it writes a SEG per study
(one segment per lesion) and OUT/lesions.csv, each lesion's volume and diameters. See
docs/batch.md.
"""

from __future__ import annotations

import os

from medviewer.core.errors import MedviewerError

QUERY_KEYS = {"patient": "patient_id", "patient_id": "patient_id", "name": "patient_name",
              "date": "study_date", "modality": "modality", "accession": "accession_number",
              "study": "study_instance_uid"}


def register(sub) -> None:
    p = sub.add_parser("batch", help="run a plugin over many studies (process pool or Dask cluster)",
                       description=__doc__.split("\n\n", 1)[1].strip())
    p.add_argument("plugin", help="plugin id (see `medviewer plugins`)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", metavar="FOLDER", help="a folder of DICOM series (any depth): one job per image series")
    src.add_argument("--pacs", metavar="SERVER",
                     help="a PACS (http(s)://host:port/dicom-web, dicom://AET@host:port or a saved name) to "
                          "query and retrieve the studies from (into the cache)")
    p.add_argument("--query", action="append", default=[], metavar="KEY=VALUE",
                   help="with --pacs: patient=ID, name=NAME, date=YYYYMMDD[-YYYYMMDD], modality=CT, "
                        "accession=N, study=UID (wildcards * ? allowed)")
    p.add_argument("--cache", metavar="DIR", help="with --pacs: where retrieved studies go (default: the cache)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (one subfolder per study, summary.csv)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="a plugin parameter")
    p.add_argument("--format", choices=("auto", "seg"), default="auto",
                   help="auto: label maps and images as .nii.gz, boxes and scores as .json; "
                        "seg: label maps as DICOM SEG (result.dcm)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="worker processes (local pool, or --scheduler local); default: the CPU count")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on a Dask distributed cluster (tcp://host:8786), or 'local' for a LocalCluster of "
                        "N worker processes; the workers need medviewer and the plugin installed and the "
                        "input readable at the same path")
    p.add_argument("--send-to-pacs", metavar="SERVER", help="send each DICOM output (--format seg) to this PACS")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where plugins run")
    p.add_argument("--timeout", type=float, metavar="S", help="stop a study's plugin after S seconds (a failure)")
    p.add_argument("--trust", action="store_true", help="trust the bundle folder given as --param bundle=DIR")
    p.add_argument("--points", metavar="CSV",
                   help="click-segment: seed points (study, series, x, y, z in patient mm, lesion, positive)")
    p.add_argument("--seeds-from-sr", action="store_true",
                   help="click-segment: a seed at the middle of each measurement in the study's SRs (TID 1500)")
    p.add_argument("--force", action="store_true", help="run finished studies again")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _query(items: list[str]):
    from medviewer.pacs import StudyQuery

    fields = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in QUERY_KEYS:
            raise MedviewerError(f"--query expects KEY=VALUE with KEY one of {', '.join(sorted(set(QUERY_KEYS) - {'patient_id'}))}, "
                                 f"got {item!r}")
        fields[QUERY_KEYS[key]] = value
    if not fields:
        raise MedviewerError("--pacs needs at least one --query KEY=VALUE (e.g. --query modality=CT)")
    return StudyQuery(**fields)


def run(args) -> int:
    from medviewer.batch import jobs_from_folder, jobs_from_pacs, run_batch
    from medviewer.plugins import trust
    from medviewer.plugins.headless import check_output, parse_params, resolve_params
    from medviewer.plugins.registry import get_manifest, static_availability

    manifest = get_manifest(args.plugin)
    avail = static_availability(manifest)
    if not avail:
        raise MedviewerError(f"plugin {manifest.id} cannot run here: {avail.describe()}")
    click = manifest.kind == "interactive"
    if click and not (args.points or args.seeds_from_sr):
        raise MedviewerError(f"plugin {manifest.id} is interactive (it needs clicks per study): give its seeds "
                             "with --points CSV or --seeds-from-sr")
    if not click and (args.points or args.seeds_from_sr):
        raise MedviewerError(f"--points and --seeds-from-sr go with an interactive plugin (click-segment), "
                             f"not {manifest.id}")
    params = resolve_params(manifest, parse_params(args.param))
    seg = args.format == "seg" or click  # click-segment writes a SEG per study
    if seg:
        check_output(manifest, os.path.join(args.out, "result.dcm"), force=True, seg=True)
    if args.workers is not None and args.workers < 1:
        raise MedviewerError("--workers must be 1 or more")
    if args.query and not args.pacs:
        raise MedviewerError("--query goes with --pacs")
    told = trust.require_trusted(manifest, params, trust_now=args.trust)
    if told:
        print(told)
    if args.send_to_pacs:
        from medviewer.batch.core import check_destination
        from medviewer.pacs import resolve_server

        resolve_server(args.send_to_pacs)  # a bad address stops the batch before it starts
        if not seg:
            raise MedviewerError("--send-to-pacs sends DICOM outputs: use it with --format seg")
        print(f"sending to {check_destination(args.send_to_pacs)} (it answers)")
    out = os.path.abspath(args.out)
    options = dict(seg=seg, device=args.device, timeout_s=args.timeout, send_to=args.send_to_pacs)
    if args.input:
        jobs = jobs_from_folder(os.path.abspath(args.input), manifest, params, out, **options)
        where = args.input
    else:
        jobs = jobs_from_pacs(args.pacs, _query(args.query), manifest, params, out,
                              cache_dir=os.path.abspath(args.cache) if args.cache else None,
                              progress=None if args.quiet else print, **options)
        where = args.pacs
    if not jobs:
        raise MedviewerError("no image series found", where)
    after_row = None
    if click:
        from medviewer.batch.click import click_jobs, write_cohort_table

        jobs, left = click_jobs(jobs, points=os.path.abspath(args.points) if args.points else None,
                                from_sr=args.seeds_from_sr, root=os.path.abspath(args.input) if args.input else None)
        if left:
            more = " ..." if len(left) > 5 else ""
            print(f"{len(left)} series without seed points left out: {', '.join(left[:5])}{more}")
        if not jobs:
            raise MedviewerError("no series has seed points (check the points CSV's study column, or the SRs)", where)
        after_row = write_cohort_table
    how = (f"Dask scheduler {args.scheduler}" if args.scheduler not in (None, "local")
           else f"a Dask LocalCluster of {args.workers or os.cpu_count()} workers" if args.scheduler
           else f"a process pool of {min(args.workers or os.cpu_count() or 1, len(jobs))} workers")
    print(f"{len(jobs)} series, plugin {manifest.id}, on {how}")
    summary = run_batch(jobs, out, workers=args.workers, scheduler=args.scheduler, force=args.force,
                        progress=not args.quiet, after_row=after_row)
    for row in summary.rows:
        if row["status"] == "failed":
            print(f"failed: {row['study']}: {row['message']} (log: {os.path.join(os.path.dirname(row['output']), 'log.txt')})")
    earlier = f" (and {len(summary.earlier)} earlier studies in {out})" if summary.earlier else ""
    print(f"{summary.done} done, {summary.failed} failed, {summary.skipped} skipped (finished earlier) "
          f"in {summary.seconds:.1f} s; summary: {summary.csv_path}{earlier}")
    if click:
        print(f"cohort table: {os.path.join(out, 'lesions.csv')}")
    return 0 if not summary.failed else 1
