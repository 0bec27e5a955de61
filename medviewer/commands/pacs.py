"""`medviewer pacs ...`: query, retrieve and send studies (DICOMweb or DIMSE), saved servers.

SERVER is http(s)://host:port/dicom-web (DICOMweb), dicom://AET@host:port (DIMSE) or the name
of a server saved with `medviewer pacs servers add NAME URL`.
"""

from __future__ import annotations

import sys

from medviewer.core.errors import MedviewerError


def register(sub) -> None:
    p = sub.add_parser("pacs", help="query, retrieve and send studies on a PACS (DICOMweb or DIMSE)",
                       description=__doc__.split("\n\n", 1)[1].strip())
    p.set_defaults(func=lambda args: p.print_help() or 0)
    actions = p.add_subparsers(dest="pacs_command", metavar="ACTION")

    def common(q):
        q.add_argument("server", metavar="SERVER",
                       help="http(s)://host:port/dicom-web, dicom://AET@host:port or a saved server name")
        q.add_argument("--ae-title", help="our AE title for DIMSE (default: from settings, else MEDVIEWER)")
        q.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the server (default 30)")

    q = actions.add_parser("query", help="find studies")
    common(q)
    q.add_argument("--patient", default="", metavar="ID", help="Patient ID (wildcards * ? allowed)")
    q.add_argument("--name", default="", help="patient name (wildcards * ? allowed)")
    q.add_argument("--modality", default="", help="a modality in the study, e.g. CT")
    q.add_argument("--date", default="", metavar="YYYYMMDD[-YYYYMMDD]", help="study date or range")
    q.add_argument("--accession", default="", metavar="N", help="accession number")
    q.add_argument("--study", default="", metavar="UID", help="Study Instance UID")
    q.add_argument("--series", action="store_true", help="also list each study's series")
    q.set_defaults(func=run_query)

    r = actions.add_parser("retrieve", help="fetch a study into a folder (one subfolder per study UID)")
    common(r)
    r.add_argument("study_uid", metavar="STUDY_UID")
    r.add_argument("--out", metavar="DIR",
                   help="folder to put the study in, as DIR/STUDY_UID/SOP_UID.dcm (default: the cache)")
    r.add_argument("--move-port", type=int, metavar="PORT",
                   help="DIMSE: retrieve with C-MOVE to our AE title, listening on PORT (the PACS must know "
                        "our AE title, host and port); default: C-GET, or the settings' move_port")
    r.set_defaults(func=run_retrieve)

    s = actions.add_parser("send", help="store DICOM files (SEG, RTSTRUCT, SR, ...) on the server")
    common(s)
    s.add_argument("files", nargs="+", metavar="FILE", help="DICOM files or folders")
    s.set_defaults(func=run_send)

    e = actions.add_parser("echo", help="check that the server answers (C-ECHO, or a QIDO-RS query)")
    common(e)
    e.set_defaults(func=run_echo)

    sv = actions.add_parser("servers", help="saved servers: add, list, remove")
    sv.set_defaults(func=run_servers_list)
    sva = sv.add_subparsers(dest="servers_command", metavar="ACTION")
    a = sva.add_parser("add", help="save a server under a name")
    a.add_argument("name")
    a.add_argument("url")
    a.add_argument("--force", action="store_true", help="replace a server saved under that name")
    a.set_defaults(func=run_servers_add)
    sva.add_parser("list", help="list saved servers").set_defaults(func=run_servers_list)
    rm = sva.add_parser("remove", help="forget a saved server")
    rm.add_argument("name")
    rm.set_defaults(func=run_servers_remove)


def _client(args):
    from medviewer.core.settings import load_settings
    from medviewer.pacs import open_server

    settings = load_settings()
    if args.ae_title:
        from medviewer.pacs.common import check_ae_title
        settings.ae_title = check_ae_title(args.ae_title)
    if getattr(args, "move_port", None) is not None:
        if not 0 <= args.move_port < 65536:
            raise MedviewerError(f"{args.move_port} is not a port number")
        settings.move_port = args.move_port
    return open_server(args.server, settings=settings, timeout=args.timeout), settings


class _Progress:
    """A tqdm bar on stderr (silent when stderr is not a terminal)."""

    def __init__(self, what: str):
        self.what = what
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total or None, desc=self.what, unit="file", disable=None, leave=False)
        if total and self.bar.total != total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_query(args) -> int:
    from medviewer.pacs import StudyQuery

    client, _ = _client(args)
    query = StudyQuery(patient_id=args.patient, patient_name=args.name, study_date=args.date,
                       modality=args.modality, accession_number=args.accession, study_instance_uid=args.study)
    studies = client.find_studies(query)
    if not studies:
        print(f"no studies match on {client.server.label}")
        return 0
    print(f"{len(studies)} stud{'y' if len(studies) == 1 else 'ies'} on {client.server.label}")
    for st in studies:
        counts = []
        if st.series_count is not None:
            counts.append(f"{st.series_count} series")
        if st.instance_count is not None:
            counts.append(f"{st.instance_count} instances")
        print(f"{st.study_instance_uid}  patient {st.patient_id or '-'} ({st.patient_name or '-'})  "
              f"date {st.study_date or '-'}  accession {st.accession_number or '-'}  "
              f"{'/'.join(st.modalities) or '-'}  {', '.join(counts)}  {st.study_description!r}")
        if args.series:
            for se in client.find_series(st.study_instance_uid):
                number = se.series_number if se.series_number is not None else "?"
                n = f"{se.instance_count} instances" if se.instance_count is not None else ""
                print(f"    series {number} {se.modality} {se.series_description!r} {n}  {se.series_instance_uid}")
    return 0


def run_retrieve(args) -> int:
    from medviewer.io import describe_series
    from medviewer.pacs import default_cache_dir
    from medviewer.pacs.common import check_uid

    check_uid(args.study_uid, "Study Instance UID")
    client, settings = _client(args)
    out = args.out or default_cache_dir(settings)
    progress = _Progress("retrieving")
    try:
        result = client.retrieve_study(args.study_uid, out, progress=progress)
    finally:
        progress.close()
    extra = f" ({result.already} already there)" if result.already else ""
    print(f"retrieved {result.instance_count} instances{extra} into {result.folder}")
    if result.failed:
        print(f"warning: {result.failed} instances could not be received", file=sys.stderr)
    for series in result.index.all_series():
        print(f"  {describe_series(series)}")
    if result.index.skipped:
        print(f"warning: {len(result.index.skipped)} files could not be read", file=sys.stderr)
    return 0 if not result.failed else 1


def run_send(args) -> int:
    client, _ = _client(args)
    progress = _Progress("sending")
    try:
        result = client.send(args.files, progress=progress)
    finally:
        progress.close()
    for path, reason in result.failed:
        print(f"not sent: {path}: {reason}", file=sys.stderr)
    print(f"sent {len(result.sent)} of {len(result.sent) + len(result.failed)} files to {client.server.label}")
    return 0 if not result.failed else 1


def run_echo(args) -> int:
    client, _ = _client(args)
    client.echo()
    print(f"{client.server.label} answers")
    return 0


def run_servers_add(args) -> int:
    from medviewer.core.settings import load_settings, save_settings
    from medviewer.pacs.common import parse_server_url, redact

    if "://" in args.name or not args.name.strip():
        raise MedviewerError("a server name is a plain word (not a URL)", args.name)
    parse_server_url(args.url)  # refuse what we could not use
    settings = load_settings()
    if args.name in settings.servers and not args.force and settings.servers[args.name] != args.url:
        raise MedviewerError(f"a server of that name is saved already ({redact(settings.servers[args.name])}); "
                             "use --force to replace it", args.name)
    settings.servers[args.name] = args.url
    path = save_settings(settings)
    print(f"saved {args.name} = {redact(args.url)} in {path}")
    return 0


def run_servers_list(args) -> int:
    from medviewer.core.settings import load_settings
    from medviewer.pacs.common import redact

    settings = load_settings()
    if not settings.servers:
        print(f"no saved servers (settings: {settings.path})")
    for name, url in sorted(settings.servers.items()):
        print(f"{name}  {redact(url)}")
    return 0


def run_servers_remove(args) -> int:
    from medviewer.core.settings import load_settings, save_settings

    settings = load_settings()
    if args.name not in settings.servers:
        raise MedviewerError("no saved server of that name", args.name)
    del settings.servers[args.name]
    save_settings(settings)
    print(f"removed {args.name}")
    return 0
