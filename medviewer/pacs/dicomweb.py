"""DICOMweb: QIDO-RS queries (dicomweb-client), WADO-RS retrieval of the stored files byte for
byte, STOW-RS of files as they are on disk."""

from __future__ import annotations

import os
import re
import uuid
from contextlib import contextmanager

from medviewer.core.errors import MedviewerError
from medviewer.pacs.common import (
    CancelledCallback, ProgressCallback, RetrieveResult, SendResult, SeriesResult, ServerAddress,
    StudyQuery, StudyResult, cached_sop_uids, check_cancelled, check_uid, files_to_send,
    finish_retrieve, prepare_study_folder, to_int, write_instance,
)

# Accept the files as the server stores them (no transcoding), each as one part.
_ACCEPT_ANY_SYNTAX = 'multipart/related; type="application/dicom"; transfer-syntax=*'
_HTTP_HINTS = {
    400: "bad request", 401: "authentication required", 403: "access forbidden",
    404: "not found (is the URL the DICOMweb root, e.g. http://host:8042/dicom-web?)",
    405: "method not allowed (does the server accept this DICOMweb service?)",
    409: "conflict (the server refused the instances)", 413: "request too large",
    415: "unsupported media type", 500: "server error", 501: "not implemented by the server",
    502: "bad gateway", 503: "service unavailable", 504: "gateway timeout",
}


def _value(item: dict, tag: str, default=""):
    values = item.get(tag, {}).get("Value") or []
    if not values:
        return default
    v = values[0]
    if isinstance(v, dict):  # person name
        return v.get("Alphabetic", default)
    return v


def http_error_message(exc: BaseException, timeout: float) -> str:
    """One short phrase for a failed HTTP exchange."""
    import requests

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        code = exc.response.status_code
        return f"HTTP {code} {_HTTP_HINTS.get(code, exc.response.reason or '')}".strip()
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS/SSL error ({exc})"
    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.ReadTimeout,
                        requests.Timeout)):
        return f"timeout (no answer within {timeout:g} s)"
    if isinstance(exc, requests.ConnectionError):
        text = str(exc)
        if "Connection refused" in text or "ECONNREFUSED" in text:
            return "connection refused (is the server running, and is the port right?)"
        if "Name or service not known" in text or "getaddrinfo" in text or "NameResolution" in text:
            return "unknown host"
        if "No route to host" in text or "Network is unreachable" in text:
            return "host unreachable"
        if "RemoteDisconnected" in text or "Connection aborted" in text or "reset by peer" in text:
            return "the server closed the connection"
        return "connection failed"
    return f"{type(exc).__name__}: {exc}"


def _qido_session():
    import requests

    class QidoSession(requests.Session):
        """Sends QIDO-RS wildcards as the literal ``*`` the standard uses: requests escapes it to
        %2A, which some servers (Orthanc's DICOMweb plugin) then match literally."""

        def prepare_request(self, request):
            prepared = super().prepare_request(request)
            if prepared.url and "?" in prepared.url:
                base, query = prepared.url.split("?", 1)
                prepared.url = base + "?" + query.replace("%2A", "*")
            return prepared

    return QidoSession()


class DicomWebClient:
    """A DICOMweb server. Every failure is raised as one MedviewerError naming the server."""

    def __init__(self, server: ServerAddress, timeout: float = 30.0, headers: dict | None = None):
        from dicomweb_client.api import DICOMwebClient

        self.server = server
        self.timeout = timeout
        self.session = _qido_session()
        if headers:
            self.session.headers.update(headers)
        if server.username or server.password:
            self.session.auth = (server.username, server.password)
        self._client = DICOMwebClient(server.url, session=self.session, timeout=timeout)
        # answer at once: a user waiting on a dialog wants the error, not five retries
        self._client.set_http_retry_params(retry=False)

    @contextmanager
    def _errors(self, what: str):
        import requests

        try:
            yield
        except MedviewerError:
            raise
        except requests.RequestException as exc:
            raise MedviewerError(f"{what} failed: {http_error_message(exc, self.timeout)}",
                                 self.server.label) from None
        except ValueError as exc:  # an answer that is not the JSON/multipart we asked for
            raise MedviewerError(f"{what} failed: unexpected answer ({exc})", self.server.label) from None

    # -- C-ECHO's counterpart -------------------------------------------------------------------
    def echo(self) -> None:
        """Check the server answers QIDO-RS (a study search with limit 1)."""
        with self._errors("connection test"):
            self._client.search_for_studies(limit=1)

    # -- QIDO-RS --------------------------------------------------------------------------------
    def find_studies(self, query: StudyQuery, limit: int | None = None) -> list[StudyResult]:
        filters = {}
        for key, value in (("PatientID", query.patient_id), ("PatientName", query.patient_name),
                           ("StudyDate", query.study_date), ("ModalitiesInStudy", query.modality),
                           ("AccessionNumber", query.accession_number),
                           ("StudyInstanceUID", query.study_instance_uid)):
            if value:
                filters[key] = value
        fields = ["PatientID", "PatientName", "StudyDate", "StudyDescription", "AccessionNumber",
                  "ModalitiesInStudy", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"]
        # Servers may cut long answers short (Orthanc's LimitFindResults, DCM4CHEE's page size):
        # ask for the rest page by page (offset) until a page brings no study not seen yet. A
        # server that refuses the offset keeps its first answer, as before paging.
        found: dict[str, dict] = {}
        while limit is None or len(found) < limit:
            try:
                with self._errors("study query (QIDO-RS)"):
                    items = self._client.search_for_studies(
                        search_filters=filters, fields=fields, get_remaining=False,
                        offset=len(found) or None, limit=None if limit is None else limit - len(found))
            except MedviewerError:
                if not found:
                    raise
                break
            before = len(found)
            for it in items:
                found.setdefault(str(_value(it, "0020000D")), it)
            if len(found) == before:
                break
        out = []
        for it in list(found.values())[:limit]:
            modalities = tuple(it.get("00080061", {}).get("Value") or ())
            out.append(StudyResult(
                study_instance_uid=str(_value(it, "0020000D")),
                patient_id=str(_value(it, "00100020")), patient_name=str(_value(it, "00100010")),
                study_date=str(_value(it, "00080020")), study_description=str(_value(it, "00081030")),
                accession_number=str(_value(it, "00080050")), modalities=modalities,
                series_count=to_int(_value(it, "00201206", None)),
                instance_count=to_int(_value(it, "00201208", None))))
        return sorted(out, key=lambda s: (s.patient_id, s.study_date, s.study_instance_uid))

    def find_series(self, study_uid: str) -> list[SeriesResult]:
        check_uid(study_uid, "Study Instance UID")
        fields = ["Modality", "SeriesNumber", "SeriesDescription", "NumberOfSeriesRelatedInstances"]
        with self._errors("series query (QIDO-RS)"):
            items = self._client.search_for_series(study_instance_uid=study_uid, fields=fields,
                                                   get_remaining=False)
        out = [SeriesResult(
            series_instance_uid=str(_value(it, "0020000E")), study_instance_uid=study_uid,
            modality=str(_value(it, "00080060")), series_number=to_int(_value(it, "00200011", None)),
            series_description=str(_value(it, "0008103E")),
            instance_count=to_int(_value(it, "00201209", None))) for it in items]
        return sorted(out, key=lambda s: (s.series_number if s.series_number is not None else 1 << 30,
                                          s.series_instance_uid))

    def find_instances(self, study_uid: str, series_uid: str | None = None,
                       expected: int | None = None) -> list[tuple[str, str]]:
        """(Series Instance UID, SOP Instance UID) of each instance of the study (or series).
        Servers may cut long answers short: with ``expected`` (the study's instance count) the
        rest is asked for page by page (offset), until nothing new comes back."""
        found: dict[str, str] = {}
        while True:
            with self._errors("instance query (QIDO-RS)"):
                items = self._client.search_for_instances(
                    study_instance_uid=study_uid, series_instance_uid=series_uid,
                    fields=["SeriesInstanceUID", "SOPInstanceUID"], get_remaining=False,
                    offset=len(found) or None)
            before = len(found)
            for it in items:
                found.setdefault(str(_value(it, "00080018")), str(_value(it, "0020000E")))
            if expected is None or len(found) >= expected or len(found) == before:
                break
        return [(series, sop) for sop, series in found.items()]

    # -- WADO-RS --------------------------------------------------------------------------------
    def _instance_bytes(self, study_uid: str, series_uid: str, sop_uid: str) -> bytes:
        url = f"{self.server.url}/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"
        response = self.session.get(url, headers={"Accept": _ACCEPT_ANY_SYNTAX}, timeout=self.timeout)
        response.raise_for_status()
        parts = split_multipart(response.headers.get("Content-Type", ""), response.content)
        if len(parts) != 1:
            raise ValueError(f"{len(parts)} parts for one instance")
        return parts[0]

    def retrieve_study(self, study_uid: str, cache_dir: str | os.PathLike,
                       progress: ProgressCallback | None = None,
                       cancelled: CancelledCallback | None = None, index: bool = True) -> RetrieveResult:
        """Fetch every instance of the study into cache_dir/<study UID>/<SOP UID>.dcm, as the
        server stores it (instances already there are kept and not fetched again)."""
        check_uid(study_uid, "Study Instance UID")
        known = self.find_studies(StudyQuery(study_instance_uid=study_uid))
        if not known:
            raise MedviewerError(f"no study {study_uid}", self.server.label)
        instances = self.find_instances(study_uid, expected=known[0].instance_count)
        if not instances:
            raise MedviewerError(f"study {study_uid} holds no instances", self.server.label)
        folder = prepare_study_folder(cache_dir, study_uid)
        result = RetrieveResult(study_uid, folder)
        have = cached_sop_uids(folder)
        total = len(instances)
        if progress is not None:
            progress(0, total)
        for n, (series_uid, sop_uid) in enumerate(instances, 1):
            check_cancelled(cancelled, "retrieval", self.server.label)
            if sop_uid in have:
                result.already += 1
            else:
                check_uid(sop_uid, "SOP Instance UID")
                with self._errors(f"retrieval of instance {sop_uid} (WADO-RS)"):
                    data = self._instance_bytes(study_uid, series_uid, sop_uid)
                write_instance(folder, sop_uid, data)
                result.received += 1
            if progress is not None:
                progress(n, total)
        return finish_retrieve(result, index)

    # -- STOW-RS --------------------------------------------------------------------------------
    def send(self, paths, progress: ProgressCallback | None = None,
             cancelled: CancelledCallback | None = None) -> SendResult:
        """Store DICOM files (SEG, RTSTRUCT, SR, images...) as they are, one request per file."""
        import pydicom

        files = files_to_send(paths)
        result = SendResult()
        if progress is not None:
            progress(0, len(files))
        for n, path in enumerate(files, 1):
            check_cancelled(cancelled, "sending", self.server.label)
            try:
                with open(path, "rb") as fh:
                    data = fh.read()
                head = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
                sop_uid = str(head.get("SOPInstanceUID", "") or "")
            except (OSError, pydicom.errors.InvalidDicomError) as exc:
                result.failed.append((path, f"not a readable DICOM file ({exc})"))
                continue
            with self._errors("sending (STOW-RS)"):
                problem = self._stow(data, sop_uid)
            if problem:
                result.failed.append((path, problem))
            else:
                result.sent.append(path)
            if progress is not None:
                progress(n, len(files))
        return result

    def _stow(self, data: bytes, sop_uid: str) -> str | None:
        """POST one file; None when the server lists it as stored, else the reason."""
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data
                + f"\r\n--{boundary}--\r\n".encode())
        response = self.session.post(
            f"{self.server.url}/studies", data=body, timeout=self.timeout,
            headers={"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                     "Accept": "application/dicom+json"})
        code = response.status_code
        if code in (202, 409):  # some or all refused, the reasons in the body
            reason = _stow_failure(response)
            return reason or (f"refused by the server (HTTP {code})" if code == 409 else None)
        if code in (400, 413, 415, 422):  # this file: the next one may go through
            return f"refused by the server (HTTP {code} {_HTTP_HINTS.get(code, response.reason or '')})".strip()
        response.raise_for_status()  # the server as a whole (401, 403, 404, 5xx): stop here
        reason = _stow_failure(response)
        if reason is None and not _stow_stored(response, sop_uid):
            reason = "not stored: the server did not list it as stored" + (
                "" if sop_uid else " (the file has no SOP Instance UID)")
        return reason


def _stow_failure(response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    failed = (body or {}).get("00081198", {}).get("Value") or []
    if not failed:
        return None
    reason = to_int(_value(failed[0], "00081197", None))
    return f"refused by the server (failure reason 0x{reason:04X})" if reason is not None else "refused by the server"


def _stow_stored(response, sop_uid: str) -> bool:
    """Whether the STOW-RS answer lists ``sop_uid`` as stored (a server that answers with no body
    is taken at its word)."""
    if not response.content:
        return True
    try:
        body = response.json()
    except ValueError:
        return True
    stored = (body or {}).get("00081199", {}).get("Value") or []
    return bool(sop_uid) and any(_value(item, "00081155") == sop_uid for item in stored)


_BOUNDARY_RE = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)


def split_multipart(content_type: str, body: bytes) -> list[bytes]:
    """The bodies of a multipart/related message (each part's headers dropped)."""
    if content_type.lower().startswith("application/dicom"):
        return [body]  # some servers send a single instance unwrapped
    match = _BOUNDARY_RE.search(content_type)
    if not content_type.lower().startswith("multipart/") or not match:
        raise ValueError(f"expected multipart/related, got {content_type or 'no Content-Type'}")
    delimiter = b"--" + match.group(1).encode()
    # delimiter lines: CRLF--boundary followed by CRLF, "--" (the last) or transport padding
    cuts, pos = [], 0
    if body.startswith(delimiter):
        body = b"\r\n" + body
    while True:
        i = body.find(b"\r\n" + delimiter, pos)
        if i < 0:
            break
        after = body[i + 2 + len(delimiter):i + 4 + len(delimiter)]
        if after[:2] in (b"\r\n", b"--") or after[:1] in (b" ", b"\t"):
            cuts.append(i)
        pos = i + 1
    parts = []
    for a, b in zip(cuts, cuts[1:]):
        chunk = body[a + 2 + len(delimiter):b]
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if sep:
            parts.append(content)
    return parts
