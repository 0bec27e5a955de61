"""A generated demo study: a CT-like chest/abdomen phantom written as a valid DICOM CT series.

Body with subcutaneous fat, two lungs, heart, liver, a vertebra with its canal, and three
spherical lesions of known centre and size (two in the lungs, one in the liver). Next to the
series: ``lesions.json`` (centres in LPS mm, radii, volumes) and ``lesions.nii.gz`` (the truth
label map), so a fresh install has something real to open, click on and check against.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume

SERIES_FOLDER = "CT"
PATIENT_ID = "MEDVIEWER-DEMO"


@dataclass(frozen=True)
class DemoLesion:
    name: str
    organ: str
    center_mm: tuple[float, float, float]  # LPS
    radius_mm: float
    hu: float

    @property
    def volume_ml(self) -> float:
        return 4.0 / 3.0 * np.pi * self.radius_mm ** 3 / 1000.0


LESIONS = (
    DemoLesion("lesion 1", "right lung", (-80.0, -5.0, 25.0), 12.0, 35.0),
    DemoLesion("lesion 2", "left lung", (75.0, 15.0, -15.0), 8.0, 25.0),
    DemoLesion("lesion 3", "liver", (-60.0, 0.0, -75.0), 15.0, 15.0),
)


def phantom(shape_zyx=(80, 256, 256), spacing_xyz=(1.4, 1.4, 2.5), seed: int = 7) -> tuple[Volume, Volume]:
    """The phantom in HU and its lesion label map (1, 2, 3 = LESIONS), both as Volumes."""
    nz, ny, nx = shape_zyx
    sx, sy, sz = spacing_xyz
    origin = (-(nx - 1) * sx / 2, -(ny - 1) * sy / 2, -(nz - 1) * sz / 2)
    z = origin[2] + sz * np.arange(nz)[:, None, None]
    y = origin[1] + sy * np.arange(ny)[None, :, None]
    x = origin[0] + sx * np.arange(nx)[None, None, :]

    def ellipsoid(cx, cy, cz, ax, ay, az):
        return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 + ((z - cz) / az) ** 2 <= 1.0

    def cylinder(cx, cy, ax, ay):
        return np.broadcast_to(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 <= 1.0, shape_zyx)

    hu = np.full(shape_zyx, -1000.0, dtype=np.float32)
    hu[cylinder(0, 0, 165, 115)] = -100.0  # subcutaneous fat
    hu[cylinder(0, 0, 152, 102)] = 35.0  # muscle and soft tissue
    chest = z > -55
    lungs = (ellipsoid(-78, -5, 30, 58, 68, 95) | ellipsoid(78, -5, 30, 58, 68, 95)) & chest
    hu[lungs] = -850.0
    hu[ellipsoid(22, -35, 0, 45, 38, 45)] = 40.0  # heart
    hu[ellipsoid(-55, 5, -80, 80, 60, 45) & ~chest] = 60.0  # liver
    vertebra = cylinder(0, 72, 20, 17)
    hu[vertebra] = 900.0
    hu[cylinder(0, 72, 16, 13)] = 350.0  # cancellous bone
    hu[cylinder(0, 98, 8, 7)] = 10.0  # spinal canal
    labels = np.zeros(shape_zyx, dtype=np.uint8)
    for n, lesion in enumerate(LESIONS, start=1):
        ball = ellipsoid(*lesion.center_mm, lesion.radius_mm, lesion.radius_mm, lesion.radius_mm)
        hu[ball] = lesion.hu
        labels[ball] = n
    rng = np.random.default_rng(seed)
    hu += rng.normal(0.0, 12.0, size=shape_zyx).astype(np.float32)
    hu = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    image = Volume(hu, spacing_xyz, origin, np.eye(3), modality="CT")
    return image, image.with_array(labels, modality="SEG")


def write_demo_study(folder: str | os.PathLike, *, force: bool = False) -> str:
    """Write the demo series into ``folder``/CT with its truth files; returns the series folder.

    The folder appears complete or not at all (written aside, then renamed into place).
    """
    from medviewer.io.image_files import write_image

    folder = os.path.abspath(os.fspath(folder))
    series_dir = os.path.join(folder, SERIES_FOLDER)
    if os.path.exists(series_dir):
        if not force:
            raise MedviewerError("demo study already there (use --force to write it again)", series_dir)
        shutil.rmtree(series_dir)
    try:
        os.makedirs(folder, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".demo-", dir=folder)
    except OSError as exc:
        raise MedviewerError(f"cannot write here ({exc.strerror or exc})", folder) from None
    try:
        image, labels = phantom()
        write_ct_series(image, staging)
        write_image(labels, os.path.join(staging, "lesions.nii.gz"))
        with open(os.path.join(staging, "lesions.json"), "w") as fh:
            json.dump({"coordinates": "DICOM patient LPS millimetres",
                       "lesions": [dict(asdict(l), label=n, volume_ml=round(l.volume_ml, 3))
                                   for n, l in enumerate(LESIONS, start=1)]}, fh, indent=2)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(staging, 0o777 & ~mask)  # mkdtemp makes 0700
        os.replace(staging, series_dir)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise MedviewerError(f"could not write the demo study ({exc.strerror or exc})", folder) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return series_dir


def write_ct_series(image: Volume, folder: str) -> None:
    """Write ``image`` (HU) as an uncompressed single-frame CT series, one file per slice."""
    now = datetime.datetime(2026, 1, 15, 9, 30)
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    nz = image.shape[0]
    stored = (image.array.astype(np.int32) + 1024).astype(np.uint16)
    for k in range(nz):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        sop_uid = generate_uid()
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
        ds.AccessionNumber = "DEMO0001"
        ds.Modality = "CT"
        ds.Manufacturer = "medviewer"
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = "medviewer demo phantom"
        ds.SeriesDescription = "Phantom chest-abdomen 2.5 mm"
        ds.PatientName = "Demo^Phantom"
        ds.PatientID = PATIENT_ID
        ds.PatientBirthDate = ""
        ds.PatientSex = "O"
        ds.BodyPartExamined = "CHEST"
        ds.SliceThickness = f"{image.spacing[2]:g}"
        ds.KVP = "120"
        ds.PatientPosition = "HFS"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.StudyID = "1"
        ds.SeriesNumber = 1
        ds.InstanceNumber = k + 1
        position = image.voxel_to_patient((k, 0, 0))
        ds.ImagePositionPatient = [f"{v:.4f}" for v in position]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = f"{position[2]:.4f}"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = image.shape[1], image.shape[2]
        ds.PixelSpacing = [f"{image.spacing[1]:g}", f"{image.spacing[0]:g}"]
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
        ds.PixelData = stored[k].tobytes()
        # Files named in reverse so that nothing may rely on file-name order.
        pydicom.dcmwrite(os.path.join(folder, f"IM{nz - k:04d}.dcm"), ds, enforce_file_format=True)
