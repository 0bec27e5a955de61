"""De-identification for sharing: a subset of the DICOM PS3.15 Basic Application Level
Confidentiality Profile.

What it does to every object of one export (one ``Deidentifier`` per export):

* names, IDs, addresses, institution and device identifiers, free-text comments: removed or
  replaced (Patient's Name and ID -> one pseudonym, the same for the whole export);
* dates shifted by one random offset (whole days, the same for all objects, so intervals hold);
  times kept; Patient's Birth Date emptied; sex, age, size and weight kept (PS3.15's Retain
  Patient Characteristics option);
* every UID that is not a standard (``1.2.840.10008.``) UID replaced by a new one, mapped
  consistently, so a SEG still references its de-identified images and frame of reference;
* private tags removed; Patient Identity Removed = YES and De-identification Method set.

It is a subset, not the full profile: burned-in annotations in pixel data are not checked and
structured-report free text is not scanned; say so to anyone you share with.
"""

from __future__ import annotations

import datetime
import random

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

# PS3.15 Table E.1-1 (subset) attributes, by keyword: removed ("X"), or emptied ("Z").
_REMOVE = (
    "PatientBirthTime", "OtherPatientIDs", "OtherPatientIDsSequence",
    "OtherPatientNames", "PatientAddress", "PatientTelephoneNumbers", "PatientMotherBirthName",
    "MilitaryRank", "EthnicGroup", "PatientComments", "AdditionalPatientHistory",
    "InstitutionAddress", "InstitutionalDepartmentName", "StationName", "DeviceSerialNumber",
    "PerformingPhysicianName", "NameOfPhysiciansReadingStudy", "OperatorsName",
    "PhysiciansOfRecord", "RequestingPhysician", "ImageComments", "RequestAttributesSequence",
    "PerformedProcedureStepID", "PerformedProcedureStepDescription", "ScheduledProcedureStepID",
    "AdmittingDiagnosesDescription", "Occupation", "MedicalRecordLocator", "ProtocolName",
    "RequestedProcedureDescription", "ReferencedPatientSequence", "ReferencedStudySequence",
    "DerivationDescription", "PatientInsurancePlanCodeSequence", "ResponsiblePerson",
    "IssuerOfPatientID", "CountryOfResidence", "RegionOfResidence", "StudyDescription",
    "SeriesDescription", "PatientState", "PregnancyStatus", "BranchOfService",
)
_EMPTY = (
    "AccessionNumber", "ReferringPhysicianName", "StudyID", "InstitutionName",
    "ContentCreatorName", "PatientBirthDate",
)
_DATE_VRS = ("DA",)
# UIDs that name a class, syntax or coding scheme, not an instance: never replaced.
_KEPT_UID_SUFFIXES = ("ClassUID", "TransferSyntaxUID", "CodingSchemeUID", "ContextUID",
                      "MappingResourceUID", "ContextGroupExtensionCreatorUID", "PrivateCreatorUID")


class Deidentifier:
    """Applies one consistent de-identification to all datasets of an export."""

    def __init__(self, pseudonym: str | None = None, date_shift_days: int | None = None,
                 seed: int | None = None):
        rng = random.Random(seed) if seed is not None else random.SystemRandom()
        self.pseudonym = pseudonym or f"ANON-{rng.getrandbits(32):08X}"
        self.date_shift = datetime.timedelta(
            days=date_shift_days if date_shift_days is not None else -rng.randint(30, 3650))
        self.uid_map: dict[str, str] = {}

    def uid(self, old: str) -> str:
        """The new UID for ``old`` (standard DICOM UIDs are kept)."""
        old = str(old)
        if not old or old.startswith("1.2.840.10008."):
            return old
        if old not in self.uid_map:
            self.uid_map[old] = generate_uid()
        return self.uid_map[old]

    def shift_date(self, value: str) -> str:
        text = str(value).strip()
        if len(text) < 8:
            return ""
        try:
            day = datetime.datetime.strptime(text[:8], "%Y%m%d").date()
        except ValueError:
            return ""
        return (day + self.date_shift).strftime("%Y%m%d")

    def apply(self, ds: Dataset) -> Dataset:
        """De-identify ``ds`` in place (and its file meta); returns it."""
        ds.remove_private_tags()
        self._walk(ds)
        ds.PatientName = f"{self.pseudonym}^"
        ds.PatientID = self.pseudonym
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = "medviewer PS3.15 basic profile subset; dates shifted; new UIDs"
        codes = Dataset()
        codes.CodeValue = "113100"
        codes.CodingSchemeDesignator = "DCM"
        codes.CodeMeaning = "Basic Application Confidentiality Profile"
        ds.DeidentificationMethodCodeSequence = [codes]
        meta = getattr(ds, "file_meta", None)
        if meta is not None and "MediaStorageSOPInstanceUID" in meta:
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        return ds

    def _walk(self, ds: Dataset) -> None:
        for keyword in _REMOVE:
            if keyword in ds:
                delattr(ds, keyword)
        for keyword in _EMPTY:
            if keyword in ds:
                ds.data_element(keyword).value = ""
        for elem in list(ds):
            if elem.VR == "SQ":
                for item in elem.value:
                    self._walk(item)
            elif elem.VR == "UI" and not elem.keyword.endswith(_KEPT_UID_SUFFIXES):
                if elem.VM > 1:
                    elem.value = [self.uid(v) for v in elem.value]
                elif elem.value:
                    elem.value = self.uid(elem.value)
            elif elem.VR in _DATE_VRS and elem.value:
                if elem.VM > 1:
                    elem.value = [self.shift_date(v) for v in elem.value]
                else:
                    elem.value = self.shift_date(elem.value)
            elif elem.VR == "DT" and elem.value:
                text = str(elem.value)
                shifted = self.shift_date(text[:8])
                elem.value = shifted + text[8:] if shifted else ""
            elif elem.VR == "PN" and elem.keyword not in ("PatientName",) and elem.value:
                elem.value = ""

    def deidentify_meta(self, meta: dict) -> dict:
        """The same mapping applied to a report's identifying fields."""
        out = dict(meta)
        for key in list(out):
            if key.endswith("_uid") and out[key]:
                out[key] = self.uid(out[key])
            elif key.endswith("_date") and out[key]:
                out[key] = self.shift_date(out[key])
        for key in ("patient_id",):
            if key in out:
                out[key] = self.pseudonym
        for key in ("patient_name", "accession_number", "source_folder", "source_file"):
            out.pop(key, None)
        return out
