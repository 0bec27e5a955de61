"""Writing results others can open: DICOM SEG, RTSTRUCT, SR, label maps, lesion reports.

Every writer is atomic (temporary file in the target folder, then rename) and refuses to replace
an existing file unless ``force`` is set. Heavy libraries are imported inside the functions.
"""

from __future__ import annotations

__all__ = ["write_seg", "write_rtstruct", "write_labelmap", "write_report", "write_detections"]


def __getattr__(name: str):
    if name == "write_seg":
        from medviewer.export.seg import write_seg
        return write_seg
    if name == "write_rtstruct":
        from medviewer.export.rtstruct import write_rtstruct
        return write_rtstruct
    if name == "write_labelmap":
        from medviewer.export.labelmap import write_labelmap
        return write_labelmap
    if name == "write_report":
        from medviewer.export.report import write_report
        return write_report
    if name == "write_detections":
        from medviewer.export.sr import write_detections
        return write_detections
    raise AttributeError(name)
