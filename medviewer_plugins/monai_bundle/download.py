"""Installing a Model Zoo bundle into the user's model folder through MONAI's own
``monai.bundle.download`` (imported lazily by ``medviewer models get`` and the window's Models menu).

Where from: ``url`` (a bundle zip), else ``source``: an ``http(s)://`` base address that serves
``NAME_vVERSION.zip`` (or ``NAME.zip`` without a version: a local mirror, a server inside a
hospital), or one of MONAI's own sources (``monaihosting``, the default, ``github``, ``ngc``).
``$MEDVIEWER_BUNDLE_SOURCE`` sets the default source. Only an explicit request downloads.

The bundle is fetched into a hidden staging folder inside the model folder, checked (a MONAI
bundle: configs/inference.*), and moved into place whole, so that a failed download leaves
nothing half-installed. Trust is the caller's business (bundles run code).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from medviewer.core.errors import MedviewerError
from medviewer.plugins.model_store import is_bundle, models_folder

DEFAULT_SOURCE = "monaihosting"
SOURCE_ENV = "MEDVIEWER_BUNDLE_SOURCE"


def default_source() -> str:
    return os.environ.get(SOURCE_ENV) or DEFAULT_SOURCE


def bundle_url(name: str, version: str | None, source: str) -> str | None:
    """The zip's address on an http(s) ``source`` (None for MONAI's named sources)."""
    if not source.startswith(("http://", "https://")):
        return None
    return f"{source.rstrip('/')}/{name}_v{version}.zip" if version else f"{source.rstrip('/')}/{name}.zip"


def _why(exc: BaseException, name: str, where: str) -> str:
    """One line for what went wrong, from the innermost exception."""
    from urllib.error import HTTPError, URLError

    while exc.__cause__ is not None or exc.__context__ is not None:
        if isinstance(exc, (HTTPError, URLError, zipfile.BadZipFile)):
            break
        exc = exc.__cause__ or exc.__context__
    if isinstance(exc, HTTPError) and exc.code == 404:
        return f"no bundle {name!r} at {where} (HTTP 404: not found)"
    if isinstance(exc, HTTPError):
        return f"the server at {where} refused {name!r} (HTTP {exc.code}: {exc.reason})"
    if isinstance(exc, URLError):
        return f"cannot reach {where} ({getattr(exc.reason, 'strerror', None) or exc.reason})"
    if isinstance(exc, zipfile.BadZipFile):
        return f"what {where} sent for {name!r} is not a zip file ({exc})"
    return f"downloading {name!r} from {where} failed ({type(exc).__name__}: {exc})"


def _extracted_bundle(staging: Path) -> Path:
    candidates = [p for p in staging.iterdir() if p.is_dir() and is_bundle(p)]
    if not candidates:
        raise MedviewerError("the download holds no MONAI bundle (no configs/inference.json or .yaml)")
    return candidates[0]


def get_bundle(name: str, version: str | None = None, *, source: str | None = None, url: str | None = None,
               folder: str | os.PathLike | None = None, force: bool = False, progress: bool = False) -> Path:
    """Download bundle ``name`` into ``folder`` (default: the user's model folder); returns its path."""
    # the scripts module's own function: a bundle run replaces monai.bundle.download (and
    # monai.apps' downloaders) with a refusal for the rest of the process (forbid_downloads),
    # and a download the user asks for afterwards, in the same window, must still work
    from monai.bundle.scripts import download

    source = source or default_source()
    url = url or bundle_url(name, version, source)
    where = url or source
    target_root = Path(folder) if folder else models_folder()
    target = target_root / name
    if target.exists() and not force:
        raise MedviewerError(f"bundle {name!r} is installed already (--force replaces it)", target)
    target_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".download-{name}-", dir=target_root))
    try:
        try:
            if url:
                download(name=name, bundle_dir=staging, url=url, progress=progress)
            else:
                download(name=name, version=version, bundle_dir=staging, source=source, progress=progress)
        except Exception as exc:  # noqa: BLE001  (urllib, zipfile and MONAI errors: one line)
            raise MedviewerError(_why(exc, name, where)) from None
        bundle = _extracted_bundle(staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(bundle, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
