"""What both PACS protocols share: server addresses, query terms, results, the study cache."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlsplit

from medviewer.core.errors import MedviewerError

ProgressCallback = Callable[[int, int], None]
CancelledCallback = Callable[[], bool]

DEFAULT_DIMSE_PORT = 104
DEFAULT_CALLED_AE = "ANY-SCP"
_AE_RE = re.compile(r"^[ -~]{1,16}$")  # printable ASCII, 1 to 16 characters
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_DATE_RE = re.compile(r"^(\d{8})?(-(\d{8})?)?$")


@dataclass(frozen=True)
class ServerAddress:
    """One PACS: ``kind`` "dicomweb" (``url`` is the DICOMweb root) or "dimse" (``host``,
    ``port``, ``called_ae``). ``name`` is the settings name it was found under, if any."""

    kind: str
    url: str  # as the user gave it (or as saved)
    host: str = ""
    port: int = 0
    called_ae: str = ""
    name: str = ""
    username: str = ""  # DICOMweb basic authentication, from http://user:password@host/...
    password: str = field(default="", repr=False)

    @property
    def label(self) -> str:
        """How messages name it: ``PACS "name" (url)`` or ``PACS url``."""
        return f'PACS "{self.name}" ({self.url})' if self.name else f"PACS {self.url}"


def parse_server_url(url: str, name: str = "") -> ServerAddress:
    """``http(s)://host:port/dicom-web`` -> DICOMweb; ``dicom://AET@host:port`` -> DIMSE."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise MedviewerError(f"not a server address ({exc})", text) from None
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise MedviewerError("no host in the DICOMweb URL (e.g. http://host:8042/dicom-web)", text)
        if parts.username is not None or parts.password is not None:  # keep them out of messages
            from urllib.parse import unquote
            netloc = parts.netloc.rsplit("@", 1)[1]
            plain = parts._replace(netloc=netloc).geturl().rstrip("/")
            return ServerAddress("dicomweb", plain, parts.hostname, port or 0, "", name,
                                 unquote(parts.username or ""), unquote(parts.password or ""))
        return ServerAddress("dicomweb", text.rstrip("/"), parts.hostname, port or 0, "", name)
    if scheme in ("dicom", "dimse"):
        if not parts.hostname:
            raise MedviewerError("no host in the DICOM address (e.g. dicom://ORTHANC@host:4242)", text)
        called = parts.username or DEFAULT_CALLED_AE
        if not _AE_RE.match(called) or called.strip() == "" or "\\" in called:
            raise MedviewerError(f"{called!r} is not a valid AE title (1-16 printable characters)", text)
        return ServerAddress("dimse", text, parts.hostname, port or DEFAULT_DIMSE_PORT, called, name)
    raise MedviewerError("not a server address: use http(s)://host:port/dicom-web, "
                         "dicom://AET@host:port or the name of a saved server", text)


def redact(url: str) -> str:
    """The URL with any password replaced by ***."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user, host = parts.netloc.rsplit("@", 1)
        return parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}").geturl()
    except ValueError:
        return url


def resolve_server(url_or_name: str, settings=None) -> ServerAddress:
    """A URL, or the name of a server saved in the settings."""
    if "://" in url_or_name:
        return parse_server_url(url_or_name)
    if settings is None:
        from medviewer.core.settings import load_settings
        settings = load_settings()
    if url_or_name in settings.servers:
        return parse_server_url(settings.servers[url_or_name], name=url_or_name)
    known = ", ".join(sorted(settings.servers)) or "none saved"
    raise MedviewerError(f"no saved server of that name (saved: {known}); give a URL or add it with "
                         f"`medviewer pacs servers add NAME URL`", url_or_name)


def check_ae_title(ae: str) -> str:
    if not _AE_RE.match(ae) or not ae.strip() or "\\" in ae:
        raise MedviewerError(f"{ae!r} is not a valid AE title (1-16 printable characters)")
    return ae


def check_uid(uid: str, what: str = "UID") -> str:
    if not _UID_RE.match(uid) or len(uid) > 64:
        raise MedviewerError(f"{uid!r} is not a valid {what} (digits and dots, at most 64 characters)")
    return uid


@dataclass(frozen=True)
class StudyQuery:
    """What to look for; empty fields match anything. ``study_date`` is YYYYMMDD or a range
    YYYYMMDD-YYYYMMDD (either end may be left open). Values may hold DICOM wildcards * and ?."""

    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""
    modality: str = ""
    accession_number: str = ""
    study_instance_uid: str = ""

    def __post_init__(self):
        if self.study_date and (not _DATE_RE.match(self.study_date) or self.study_date == "-"):
            raise MedviewerError(f"{self.study_date!r} is not a date: use YYYYMMDD or YYYYMMDD-YYYYMMDD")


@dataclass(frozen=True)
class StudyResult:
    study_instance_uid: str
    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""
    study_description: str = ""
    accession_number: str = ""
    modalities: tuple[str, ...] = ()
    series_count: int | None = None
    instance_count: int | None = None


@dataclass(frozen=True)
class SeriesResult:
    series_instance_uid: str
    study_instance_uid: str
    modality: str = ""
    series_number: int | None = None
    series_description: str = ""
    instance_count: int | None = None


@dataclass
class RetrieveResult:
    """A retrieved study: ``folder`` (cache folder/<Study Instance UID>) with one file per
    instance, ``received`` new files, ``already`` files that were in the cache, and the index."""

    study_instance_uid: str
    folder: str
    received: int = 0
    already: int = 0
    failed: int = 0
    index: object = None  # medviewer.io.DicomIndex of the folder

    @property
    def instance_count(self) -> int:
        return self.received + self.already


@dataclass
class SendResult:
    sent: list[str] = field(default_factory=list)  # paths stored by the server
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def to_int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def study_folder(cache_dir: str | os.PathLike, study_uid: str) -> str:
    return os.path.join(os.fspath(cache_dir), check_uid(study_uid, "Study Instance UID"))


def instance_path(folder: str, sop_uid: str) -> str:
    return os.path.join(folder, check_uid(sop_uid, "SOP Instance UID") + ".dcm")


def write_instance(folder: str, sop_uid: str, data: bytes) -> str:
    """Write one received instance as <folder>/<SOP Instance UID>.dcm, atomically."""
    from medviewer.core.atomic import write_bytes

    return write_bytes(instance_path(folder, sop_uid), data, force=True)


def prepare_study_folder(cache_dir: str | os.PathLike, study_uid: str) -> str:
    folder = study_folder(cache_dir, study_uid)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        from medviewer.core.atomic import os_error_message
        raise MedviewerError(f"cannot create the study folder ({os_error_message(exc)})", folder) from None
    return folder


def remove_partials(folder: str) -> None:
    """Temporary files a killed retrieval may have left behind."""
    for name in os.listdir(folder):
        if name.startswith(".") and name.endswith(".part"):
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass


def cached_sop_uids(folder: str) -> set[str]:
    return {n[:-4] for n in os.listdir(folder) if n.endswith(".dcm") and not n.startswith(".")}


def finish_retrieve(result: RetrieveResult, index: bool = True) -> RetrieveResult:
    remove_partials(result.folder)
    if index:
        from medviewer.io import index_folder
        result.index = index_folder(result.folder)
    return result


def check_cancelled(cancelled: CancelledCallback | None, what: str, label: str) -> None:
    if cancelled is not None and cancelled():
        raise MedviewerError(f"{what} cancelled", label)


def files_to_send(paths) -> list[str]:
    """Files given, and the files inside folders given (hidden ones skipped), sorted."""
    out: list[str] = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                out.extend(os.path.join(dirpath, f) for f in sorted(filenames) if not f.startswith("."))
        elif os.path.isfile(p):
            out.append(p)
        else:
            raise MedviewerError("no such file or folder", p)
    if not out:
        raise MedviewerError("nothing to send (no files)")
    return out
