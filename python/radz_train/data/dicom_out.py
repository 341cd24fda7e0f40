"""Write phantom radiographs as real DICOM files (pydicom, imported lazily).

SOP classes:
    CR  Computed Radiography Image Storage               1.2.840.10008.5.1.4.1.1.1
    DX  Digital X-Ray Image Storage - For Presentation   1.2.840.10008.5.1.4.1.1.1.1

Pixels: BitsAllocated 16, BitsStored 12..16, unsigned, MONOCHROME1 or MONOCHROME2, with
WindowCenter / WindowWidth (VOI LINEAR) that display the image as generated, and
RescaleSlope 1 / RescaleIntercept 0 (required by DX, written for CR too).
UIDs are deterministic: generated from (seed, index, site) with pydicom's generate_uid
entropy sources, so rewriting a case gives byte-identical UIDs. Explicit VR little endian
with a valid file meta header (passes pydicom.dcmread and dcmtk dcmdump).

Public API:
    CR_SOP_CLASS, DX_SOP_CLASS
    case_dataset(case, *, modality=None, bits=None, monochrome=None) -> pydicom.Dataset
    write_case(case, path, **same options) -> str
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from radz_train.data.phantom import SITES, PhantomCase, to_stored

if TYPE_CHECKING:  # pragma: no cover
    import pydicom

__all__ = ["CR_SOP_CLASS", "DX_SOP_CLASS", "case_dataset", "write_case", "uids_for"]

CR_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.1"
DX_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.1.1"
_FIXED_DATE, _FIXED_TIME = "20240101", "120000"  # deterministic files; not real dates


def uids_for(seed: int, index: int, site: str) -> dict[str, str]:
    """Deterministic Study/Series/SOP Instance UIDs (one study per case, one series per site)."""
    from pydicom.uid import generate_uid

    base = ["radz-phantom", str(seed), str(index)]
    return {
        "study": generate_uid(entropy_srcs=base + ["study"]),
        "series": generate_uid(entropy_srcs=base + [site, "series"]),
        "sop": generate_uid(entropy_srcs=base + [site, "sop"]),
        "frame_of_reference": generate_uid(entropy_srcs=base + [site, "for"]),
    }


def case_dataset(
    case: PhantomCase, *, modality: str | None = None, bits: int | None = None, monochrome: str | None = None
) -> pydicom.Dataset:
    """A complete DICOM dataset (with file meta) for one phantom case.

    Args:
        case: the generated case (its site gives the defaults).
        modality: "CR" or "DX" (default: the site's).
        bits: BitsStored 12..16 (default: the site's).
        monochrome: "MONOCHROME1" or "MONOCHROME2" (default: the site's).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    style = SITES[case.site]
    modality = modality or style.modality
    bits = style.bits_stored if bits is None else bits
    monochrome = monochrome or style.photometric
    if modality not in ("CR", "DX"):
        raise ValueError(f"modality must be 'CR' or 'DX', got {modality!r}")
    stored, center, width = to_stored(case.image, bits=bits, monochrome=monochrome)
    uids = uids_for(case.seed, case.index, case.site)
    sop_class = CR_SOP_CLASS if modality == "CR" else DX_SOP_CLASS

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = uids["sop"]
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "RADZ_PHANTOM"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"] if modality == "CR" else ["ORIGINAL", "PRIMARY", ""]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = uids["sop"]
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = _FIXED_DATE
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = _FIXED_TIME
    ds.AccessionNumber = f"PH{case.seed % 10000:04d}{case.index:08d}"[:16]
    ds.Modality = modality
    ds.Manufacturer = "radz_engine phantom"
    ds.InstitutionName = case.site
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "XR CHEST 1 VIEW (PHANTOM)"
    ds.SeriesDescription = f"CHEST {style.view_position}"
    ds.PatientName = f"PHANTOM^{case.seed}^{case.index}"
    ds.PatientID = f"PH-{case.seed}-{case.index:06d}"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = style.view_position
    ds.PatientOrientation = ["L", "F"] if style.view_position == "PA" else ["R", "F"]
    ds.StudyInstanceUID = uids["study"]
    ds.SeriesInstanceUID = uids["series"]
    ds.FrameOfReferenceUID = uids["frame_of_reference"]
    ds.StudyID = str(case.index)
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Laterality = ""
    if modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.PixelIntensityRelationship = "LOG"
        ds.PixelIntensityRelationshipSign = -1 if monochrome == "MONOCHROME1" else 1
        ds.DetectorType = "SCINTILLATOR"
        ds.ImagerPixelSpacing = [f"{case.acquisition.get('pixel_spacing_mm', 0.175):.4f}"] * 2
        ds.RescaleType = "US"
    else:
        ds.PlateType = "PHANTOM"
        ds.ImagerPixelSpacing = [f"{case.acquisition.get('pixel_spacing_mm', 0.15):.4f}"] * 2
    ds.PixelSpacing = ds.ImagerPixelSpacing
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = monochrome
    ds.Rows, ds.Columns = (int(n) for n in stored.shape)
    ds.BitsAllocated = 16
    ds.BitsStored = int(bits)
    ds.HighBit = int(bits) - 1
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.WindowCenter = f"{center:.1f}"
    ds.WindowWidth = f"{width:.1f}"
    ds.VOILUTFunction = "LINEAR"
    ds.WindowCenterWidthExplanation = "PHANTOM DISPLAY"
    ds.LossyImageCompression = "00"
    ds.BurnedInAnnotation = "NO"
    ds.PixelData = stored.astype("<u2").tobytes()
    return ds


def write_case(
    case: PhantomCase,
    path: str | os.PathLike,
    *,
    modality: str | None = None,
    bits: int | None = None,
    monochrome: str | None = None,
) -> str:
    """Write `case` to `path` as a DICOM Part 10 file; returns the path."""
    ds = case_dataset(case, modality=modality, bits=bits, monochrome=monochrome)
    path = os.fspath(path)
    ds.save_as(path, enforce_file_format=True)
    return path
