"""DIMSE (classic DICOM networking, pynetdicom): C-ECHO, C-FIND (study root), C-GET into the
cache (the instances come back on the same association: no port of ours has to be reachable from
the PACS), C-STORE of files as they are on disk."""

from __future__ import annotations

import os
import socket
import time
from contextlib import contextmanager

from medviewer.core.errors import MedviewerError
from medviewer.pacs.common import (
    CancelledCallback, ProgressCallback, RetrieveResult, SendResult, SeriesResult, ServerAddress,
    StudyQuery, StudyResult, cached_sop_uids, check_ae_title, check_cancelled, check_uid,
    files_to_send, finish_retrieve, instance_path, prepare_study_folder, to_int, write_instance,
)

# Storage SOP classes we accept on C-GET (what a CT viewer meets; a study's other objects are
# reported as not received). Names as in pynetdicom.sop_class.
RETRIEVE_SOP_CLASSES = (
    "CTImageStorage", "EnhancedCTImageStorage", "LegacyConvertedEnhancedCTImageStorage",
    "MRImageStorage", "EnhancedMRImageStorage", "PositronEmissionTomographyImageStorage",
    "EnhancedPETImageStorage", "NuclearMedicineImageStorage", "ComputedRadiographyImageStorage",
    "DigitalXRayImageStorageForPresentation", "DigitalXRayImageStorageForProcessing",
    "DigitalMammographyXRayImageStorageForPresentation", "UltrasoundImageStorage",
    "UltrasoundMultiFrameImageStorage", "SecondaryCaptureImageStorage",
    "MultiFrameGrayscaleByteSecondaryCaptureImageStorage",
    "MultiFrameGrayscaleWordSecondaryCaptureImageStorage",
    "MultiFrameTrueColorSecondaryCaptureImageStorage", "XRayAngiographicImageStorage",
    "XRayRadiofluoroscopicImageStorage", "SegmentationStorage", "LabelMapSegmentationStorage",
    "SurfaceSegmentationStorage",
    "RTStructureSetStorage", "RTDoseStorage", "RTPlanStorage", "RTImageStorage",
    "BasicTextSRStorage", "EnhancedSRStorage", "ComprehensiveSRStorage", "Comprehensive3DSRStorage",
    "KeyObjectSelectionDocumentStorage", "GrayscaleSoftcopyPresentationStateStorage",
    "EncapsulatedPDFStorage", "SpatialRegistrationStorage", "ParametricMapStorage",
)
# Transfer syntaxes we accept on C-GET: the uncompressed ones and the usual compressed ones, so
# the server can send each file as it stores it.
TRANSFER_SYNTAXES = (
    "1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
)
# One presentation context per transfer syntax (the acceptor picks one syntax per context): the
# image classes get every syntax above, so that the server can send each file as it stores it;
# the others (SEG, RTSTRUCT, SR, ... stored uncompressed) get the two uncompressed ones. 116 of the
# 128 contexts an association may have.
FULL_SYNTAX_CLASSES = ("CTImageStorage", "MRImageStorage", "PositronEmissionTomographyImageStorage",
                       "EnhancedCTImageStorage", "SecondaryCaptureImageStorage")


def retrieve_contexts() -> list[tuple[str, tuple[str, ...]]]:
    from pynetdicom import sop_class

    out = []
    for name in RETRIEVE_SOP_CLASSES:
        syntaxes = TRANSFER_SYNTAXES if name in FULL_SYNTAX_CLASSES else TRANSFER_SYNTAXES[:2]
        out += [(getattr(sop_class, name), (ts,)) for ts in syntaxes]
    return out


_FIND = "1.2.840.10008.5.1.4.1.2.2.1"  # Study Root Query/Retrieve Information Model - FIND
_GET = "1.2.840.10008.5.1.4.1.2.2.3"  # Study Root Query/Retrieve Information Model - GET
_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"  # Study Root Query/Retrieve Information Model - MOVE
_VERIFICATION = "1.2.840.10008.1.1"
_REJECT_REASONS = {  # (source, diagnostic) -> what it means for the user
    (1, 2): "application context not supported",
    (1, 3): "our AE title was not recognised (add it to the PACS's known modalities)",
    (1, 7): "the called AE title was not recognised (check the AE title in the URL)",
    (3, 1): "temporary congestion", (3, 2): "local limit exceeded",
}


def _status_text(status: int) -> str:
    known = {0xA700: "out of resources", 0xA701: "out of resources (cannot count matches)",
             0xA702: "out of resources (cannot do the sub-operations)",
             0xA801: "the destination is unknown to the PACS", 0xA900: "identifier does not match the SOP class",
             0xC000: "unable to process", 0x0122: "SOP class not supported", 0x0124: "not authorised",
             0xFE00: "cancelled", 0xB000: "some sub-operations failed"}
    return f"status 0x{status:04X}" + (f" ({known[status]})" if status in known else "")


class DimseClient:
    """A DICOM node reached over DIMSE. Every failure is raised as one MedviewerError naming it."""

    def __init__(self, server: ServerAddress, ae_title: str = "MEDVIEWER", timeout: float = 30.0,
                 move_port: int = 0):
        self.server = server
        self.ae_title = check_ae_title(ae_title)
        self.timeout = timeout
        self.move_port = move_port  # > 0: retrieve with C-MOVE, our storage SCP on this port

    # -- association ------------------------------------------------------------------------------
    def _probe(self) -> None:
        """A plain TCP connect first, so that 'refused', 'timeout' and 'unknown host' are told apart."""
        try:
            with socket.create_connection((self.server.host, self.server.port), timeout=min(self.timeout, 10)):
                pass
        except socket.gaierror:
            raise MedviewerError("unknown host", self.server.label) from None
        except ConnectionRefusedError:
            raise MedviewerError("connection refused (is the server running, and is the port right?)",
                                 self.server.label) from None
        except (socket.timeout, TimeoutError):
            raise MedviewerError(f"timeout (no answer within {min(self.timeout, 10):g} s)",
                                 self.server.label) from None
        except OSError as exc:
            raise MedviewerError(f"cannot connect ({exc.strerror or exc})", self.server.label) from None

    @contextmanager
    def _association(self, contexts: list[tuple[str, tuple[str, ...]]], roles=(), handlers=()):
        from pynetdicom import AE

        self._probe()
        ae = AE(ae_title=self.ae_title)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout
        ae.connection_timeout = min(self.timeout, 10)
        for uid, syntaxes in contexts:
            ae.add_requested_context(uid, list(syntaxes))
        started = time.monotonic()
        assoc = ae.associate(self.server.host, self.server.port, ae_title=self.server.called_ae,
                             ext_neg=list(roles) or None, evt_handlers=list(handlers) or None)
        if not assoc.is_established:
            ae.shutdown()
            if not assoc.is_rejected and time.monotonic() - started >= 0.9 * self.timeout:
                raise MedviewerError(f"timeout (no answer to the association request within "
                                     f"{self.timeout:g} s)", self.server.label)
            raise MedviewerError(self._refusal(assoc), self.server.label)
        try:
            yield assoc
        except BaseException:  # an error, a cancel, Ctrl-C: do not wait for a polite release
            if assoc.is_established:
                assoc.abort()
            raise
        else:
            if assoc.is_established:
                assoc.release()
        finally:
            ae.shutdown()

    def _refusal(self, assoc) -> str:
        if assoc.is_rejected:
            rsp = getattr(assoc.acceptor, "primitive", None)
            source = getattr(rsp, "result_source", None)
            diagnostic = getattr(rsp, "diagnostic", None)
            why = _REJECT_REASONS.get((source, diagnostic)) or getattr(rsp, "reason_str", "") or "no reason given"
            return f"association rejected: {why} (we are {self.ae_title}, called {self.server.called_ae})"
        if assoc.is_aborted:  # some servers (Orthanc under load) drop a request they reject
            return (f"association aborted by the server before it was accepted (check the called AE "
                    f"title {self.server.called_ae} and that the server knows our AE title {self.ae_title})")
        return f"no association (no answer within {self.timeout:g} s, or not a DICOM server)"

    def _no_answer(self, what: str, started: float) -> MedviewerError:
        if time.monotonic() - started >= 0.9 * self.timeout:
            return MedviewerError(f"{what} failed: timeout (no answer within {self.timeout:g} s)",
                                  self.server.label)
        return MedviewerError(f"{what} failed: the server aborted the association (does it know our AE "
                              f"title {self.ae_title}?)", self.server.label)

    def _context_check(self, assoc, uid: str, what: str) -> None:
        if not any(c.abstract_syntax == uid for c in assoc.accepted_contexts):
            raise MedviewerError(f"the server does not offer {what}", self.server.label)

    # -- C-ECHO -----------------------------------------------------------------------------------
    def echo(self) -> None:
        with self._association([(_VERIFICATION, ("1.2.840.10008.1.2",))]) as assoc:
            status = assoc.send_c_echo()
            if not status or status.get("Status") != 0:
                raise MedviewerError("C-ECHO failed" + (f": {_status_text(status.Status)}" if status else
                                                        ": no answer"), self.server.label)

    # -- C-FIND -----------------------------------------------------------------------------------
    def _find(self, identifier, what: str) -> list:
        syntaxes = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")
        out = []
        with self._association([(_FIND, syntaxes)]) as assoc:
            self._context_check(assoc, _FIND, "Study Root C-FIND")
            started = time.monotonic()
            for status, ds in assoc.send_c_find(identifier, _FIND):
                if not status:
                    raise self._no_answer(what, started)
                code = int(status.Status)
                if code in (0xFF00, 0xFF01):
                    if ds is not None:
                        out.append(ds)
                elif code != 0x0000:
                    raise MedviewerError(f"{what} failed: {_status_text(code)}", self.server.label)
        return out

    def find_studies(self, query: StudyQuery, limit: int | None = None) -> list[StudyResult]:
        from pydicom import Dataset

        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.PatientID = query.patient_id
        ds.PatientName = query.patient_name
        ds.StudyDate = query.study_date
        ds.ModalitiesInStudy = query.modality
        ds.AccessionNumber = query.accession_number
        ds.StudyInstanceUID = query.study_instance_uid
        for keyword in ("StudyDescription", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"):
            setattr(ds, keyword, None)
        out = []
        for it in self._find(ds, "study query (C-FIND)"):
            mods = it.get("ModalitiesInStudy", "")
            mods = tuple(mods) if not isinstance(mods, str) else tuple(m for m in mods.split("\\") if m)
            out.append(StudyResult(
                study_instance_uid=str(it.get("StudyInstanceUID", "")), patient_id=str(it.get("PatientID", "")),
                patient_name=str(it.get("PatientName", "")), study_date=str(it.get("StudyDate", "")),
                study_description=str(it.get("StudyDescription", "")),
                accession_number=str(it.get("AccessionNumber", "")), modalities=mods,
                series_count=to_int(it.get("NumberOfStudyRelatedSeries")),
                instance_count=to_int(it.get("NumberOfStudyRelatedInstances"))))
        out.sort(key=lambda s: (s.patient_id, s.study_date, s.study_instance_uid))
        return out[:limit] if limit else out

    def find_series(self, study_uid: str) -> list[SeriesResult]:
        from pydicom import Dataset

        ds = Dataset()
        ds.QueryRetrieveLevel = "SERIES"
        ds.StudyInstanceUID = check_uid(study_uid, "Study Instance UID")
        for keyword in ("SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription",
                        "NumberOfSeriesRelatedInstances"):
            setattr(ds, keyword, None)
        out = [SeriesResult(
            series_instance_uid=str(it.get("SeriesInstanceUID", "")), study_instance_uid=study_uid,
            modality=str(it.get("Modality", "")), series_number=to_int(it.get("SeriesNumber")),
            series_description=str(it.get("SeriesDescription", "")),
            instance_count=to_int(it.get("NumberOfSeriesRelatedInstances")))
            for it in self._find(ds, "series query (C-FIND)")]
        return sorted(out, key=lambda s: (s.series_number if s.series_number is not None else 1 << 30,
                                          s.series_instance_uid))

    # -- C-GET ------------------------------------------------------------------------------------
    def retrieve_study(self, study_uid: str, cache_dir: str | os.PathLike,
                       progress: ProgressCallback | None = None,
                       cancelled: CancelledCallback | None = None, index: bool = True) -> RetrieveResult:
        """Fetch the study into cache_dir/<study UID>/<SOP UID>.dcm: each file is the dataset as
        the server sent it (in the transfer syntax it stores), with a file meta header of ours.

        C-GET (the instances come back on our association) unless ``move_port`` is set: then
        C-MOVE to our AE title, with a storage SCP of ours listening on that port for the time of
        the retrieval (the PACS must know our AE title, host and port)."""
        from pydicom import Dataset
        from pynetdicom import AE, build_role, evt, sop_class

        check_uid(study_uid, "Study Instance UID")
        known = self.find_studies(StudyQuery(study_instance_uid=study_uid))
        if not known:
            raise MedviewerError(f"no study {study_uid}", self.server.label)
        expected = known[0].instance_count or 0
        folder = prepare_study_folder(cache_dir, study_uid)
        have = cached_sop_uids(folder)
        result = RetrieveResult(study_uid, folder)
        errors: list[str] = []

        def on_store(event):
            sop_uid = str(event.request.AffectedSOPInstanceUID)
            try:
                if sop_uid in have or os.path.exists(instance_path(folder, sop_uid)):
                    result.already += 1
                else:
                    write_instance(folder, sop_uid, event.encoded_dataset(include_meta=True))
                    result.received += 1
            except MedviewerError as exc:
                errors.append(str(exc))
                return 0xA700  # out of resources: the PACS counts it as failed
            return 0x0000

        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.StudyInstanceUID = study_uid
        storage = [getattr(sop_class, name) for name in RETRIEVE_SOP_CLASSES]
        scp = None
        if self.move_port:
            how, uid = "C-MOVE", _MOVE
            contexts = [(_MOVE, ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2"))]
            roles, handlers = (), ()
            scp_ae = AE(ae_title=self.ae_title)
            scp_ae.network_timeout = scp_ae.acse_timeout = scp_ae.dimse_timeout = self.timeout
            for c in storage:
                scp_ae.add_supported_context(c, list(TRANSFER_SYNTAXES))
            try:
                scp = scp_ae.start_server(("", self.move_port), block=False,
                                          evt_handlers=[(evt.EVT_C_STORE, on_store)])
            except OSError as exc:
                raise MedviewerError(f"cannot listen on port {self.move_port} for C-MOVE "
                                     f"({exc.strerror or exc})") from None
        else:
            how, uid = "C-GET", _GET
            contexts = [(_GET, ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2"))] + retrieve_contexts()
            roles = [build_role(c, scp_role=True) for c in storage]
            handlers = [(evt.EVT_C_STORE, on_store)]
        final = None
        try:
            with self._association(contexts, roles, handlers) as assoc:
                self._context_check(assoc, uid, f"Study Root {how}" + (
                    " (try C-MOVE with --move-port, or the server's DICOMweb URL)" if how == "C-GET" else ""))
                if progress is not None:
                    progress(0, expected)
                responses = (assoc.send_c_move(ds, self.ae_title, _MOVE) if scp is not None
                             else assoc.send_c_get(ds, _GET))
                started = time.monotonic()
                for status, _identifier in responses:
                    if errors:
                        raise MedviewerError(errors[0])
                    check_cancelled(cancelled, "retrieval", self.server.label)
                    if not status:
                        raise self._no_answer(f"retrieval ({how})", started)
                    final = int(status.Status)
                    done = sum(to_int(status.get(k)) or 0 for k in (
                        "NumberOfCompletedSuboperations", "NumberOfFailedSuboperations",
                        "NumberOfWarningSuboperations"))
                    total = done + (to_int(status.get("NumberOfRemainingSuboperations")) or 0)
                    if final in (0xFF00, 0xFF01):
                        if progress is not None:
                            progress(done, total)
                    else:
                        result.failed = to_int(status.get("NumberOfFailedSuboperations")) or 0
        finally:
            if scp is not None:
                scp.shutdown()
        if errors:
            raise MedviewerError(errors[0])
        if final not in (0x0000, 0xB000):
            why = _status_text(final) if final is not None else "no answer"
            if final == 0xA801:
                why += f": add our AE title {self.ae_title} with this host and port {self.move_port} to the PACS"
            raise MedviewerError(f"retrieval ({how}) failed: {why}", self.server.label)
        if result.instance_count == 0:
            raise MedviewerError(f"none of the instances of study {study_uid} could be received",
                                 self.server.label)
        if progress is not None:
            progress(result.instance_count, result.instance_count + result.failed)
        return finish_retrieve(result, index)

    # -- C-STORE ----------------------------------------------------------------------------------
    def send(self, paths, progress: ProgressCallback | None = None,
             cancelled: CancelledCallback | None = None) -> SendResult:
        """C-STORE DICOM files (SEG, RTSTRUCT, SR, images...) as they are on disk."""
        import pydicom

        files = files_to_send(paths)
        result = SendResult()
        readable: list[tuple[str, str, str]] = []
        for path in files:
            try:
                meta = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
                sop_class = str(meta.file_meta.MediaStorageSOPClassUID)
                syntax = str(meta.file_meta.TransferSyntaxUID)
                sop_uid = str(meta.file_meta.get("MediaStorageSOPInstanceUID", "") or "")
            except Exception as exc:  # not DICOM, no file meta, unreadable
                result.failed.append((path, f"not a DICOM file with a file meta header ({type(exc).__name__})"))
                continue
            if not sop_class or not sop_uid or not syntax:
                result.failed.append((path, "cannot be sent: the file has no SOP Class UID, SOP Instance UID "
                                            "or transfer syntax in its file meta header"))
                continue
            readable.append((path, sop_class, syntax))
        pairs = sorted({(c, s) for _, c, s in readable})
        if len(pairs) > 128:
            raise MedviewerError(f"{len(pairs)} kinds of files (SOP class and transfer syntax); "
                                 "send them in smaller groups (at most 128 kinds)")
        if not readable:
            return result
        by_class: dict[str, list[str]] = {}
        for c, s in pairs:
            by_class.setdefault(c, []).append(s)
        contexts = []
        for c, syntaxes in by_class.items():  # one context per pair keeps each syntax offered as is
            contexts += [(c, (s,)) for s in syntaxes]
        if progress is not None:
            progress(0, len(files))
        with self._association(contexts) as assoc:
            accepted = {(c.abstract_syntax, c.transfer_syntax[0]) for c in assoc.accepted_contexts}
            for n, (path, c, s) in enumerate(readable, 1):
                check_cancelled(cancelled, "sending", self.server.label)
                if (c, s) not in accepted:
                    result.failed.append((path, f"the server does not accept SOP class {c} in syntax {s}"))
                    continue
                started = time.monotonic()
                try:
                    status = assoc.send_c_store(path)
                except (ValueError, AttributeError, KeyError) as exc:  # pynetdicom refuses to send it
                    result.failed.append((path, f"cannot be sent ({exc})"))
                    continue
                if not status:
                    raise self._no_answer(f"sending (C-STORE) of {path}", started)
                code = int(status.Status)
                if code == 0x0000 or (code & 0xF000) == 0xB000:
                    result.sent.append(path)
                else:
                    result.failed.append((path, f"refused by the server ({_status_text(code)})"))
                if progress is not None:
                    progress(n + len(files) - len(readable), len(files))
        return result
