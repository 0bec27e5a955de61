"""Where the shipped resources (model bundles) are.

A clone of the repository, or an editable install, reads them from its ``resources/`` folder; a
regular ``pip install`` copies them to ``<prefix>/share/medviewer/resources`` (pyproject's
data-files). ``MEDVIEWER_RESOURCES`` points somewhere else (a shared folder on a workstation).
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

SOURCE_TREE = Path(__file__).resolve().parents[2] / "resources"


def resource_roots() -> list[Path]:
    """The folders searched, in order."""
    roots = []
    if os.environ.get("MEDVIEWER_RESOURCES"):
        roots.append(Path(os.environ["MEDVIEWER_RESOURCES"]))
    roots.append(SOURCE_TREE)
    for prefix in dict.fromkeys([sysconfig.get_path("data"), sys.prefix]):
        roots.append(Path(prefix) / "share" / "medviewer" / "resources")
    return roots


def resource_path(name: str) -> Path:
    """The first ``<root>/name`` that exists; else where a clone would have it (so that the
    caller's own 'missing' message names a real place)."""
    for root in resource_roots():
        if (root / name).exists():
            return root / name
    return SOURCE_TREE / name
