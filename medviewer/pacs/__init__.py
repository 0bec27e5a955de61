"""PACS client: query, retrieve and send studies over DICOMweb (QIDO-RS, WADO-RS, STOW-RS) or
DIMSE (C-FIND, C-GET, C-STORE).

Callers (the CLI, a Qt dock, a batch runner) use plain objects::

    client = open_server("http://host:8042/dicom-web")   # or dicom://AET@host:4242, or a saved name
    studies = client.find_studies(StudyQuery(patient_id="STS_002", modality="CT"))
    result = client.retrieve_study(uid, cache_dir, progress=on_progress, cancelled=is_cancelled)
    client.send(["seg.dcm"], progress=..., cancelled=...)

``progress(done, total)`` is called in the caller's thread; ``cancelled()`` returning True stops
the work with a MedviewerError (files already received stay, each complete). Every failure reaches
the caller as one MedviewerError naming the server and what happened.
Imports no Qt, VTK or torch; dicomweb-client/requests and pynetdicom load when first used.
"""

from __future__ import annotations

from medviewer.pacs.common import (
    RetrieveResult, SendResult, SeriesResult, ServerAddress, StudyQuery, StudyResult,
    parse_server_url, resolve_server,
)

__all__ = [
    "open_server", "parse_server_url", "resolve_server", "ServerAddress", "StudyQuery",
    "StudyResult", "SeriesResult", "RetrieveResult", "SendResult", "default_cache_dir",
]


def open_server(url_or_name: str | ServerAddress, settings=None, timeout: float = 30.0):
    """A DicomWebClient or DimseClient for a URL or a saved server name (our AE title from the
    settings)."""
    from medviewer.core.settings import load_settings

    if settings is None:
        settings = load_settings()
    server = url_or_name if isinstance(url_or_name, ServerAddress) else resolve_server(url_or_name, settings)
    if server.kind == "dicomweb":
        from medviewer.pacs.dicomweb import DicomWebClient
        return DicomWebClient(server, timeout=timeout)
    from medviewer.pacs.dimse import DimseClient
    return DimseClient(server, ae_title=settings.ae_title, timeout=timeout, move_port=settings.move_port)


def default_cache_dir(settings=None) -> str:
    """Where retrieved studies go: <settings cache folder>/pacs (one subfolder per study UID)."""
    import os

    from medviewer.core.settings import load_settings

    settings = settings or load_settings()
    return os.path.join(settings.cache_folder, "pacs")
