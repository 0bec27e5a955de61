"""Fixes for attributes that writers copy from the source images, where the sources break DICOM."""

from __future__ import annotations


def tidy_copied_attributes(ds) -> None:
    """Make values copied from real-world sources valid in the new object (in place).

    * Study ID longer than 16 characters (SH) -> first 16;
    * a Referenced Study Sequence whose items lack the Referenced SOP Class UID -> removed
      (it is type 3 in the objects we write).
    """
    if len(str(ds.get("StudyID", "") or "")) > 16:
        ds.StudyID = str(ds.StudyID)[:16]
    if "ReferencedStudySequence" in ds and any(
            "ReferencedSOPClassUID" not in item for item in ds.ReferencedStudySequence):
        del ds.ReferencedStudySequence
