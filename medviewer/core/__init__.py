"""The Qt-, VTK- and torch-free core: volumes, geometry, errors."""

from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume

__all__ = ["MedviewerError", "Volume"]
