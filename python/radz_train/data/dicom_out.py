"""Write phantom radiographs as real DICOM files (pydicom, imported lazily).

SOP classes:
    CR  Computed Radiography Image Storage               1.2.840.10008.5.1.4.1.1.1
    DX  Digital X-Ray Image Storage - For Presentation   1.2.840.10008.5.1.4.1.1.1.1

Pixels: BitsAllocated 16, BitsStored 12..16, unsigned, MONOCHROME1 or MONOCHROME2, with
WindowCenter / WindowWidth (VOI LINEAR) that display the image as generated, and
RescaleSlope 1 / RescaleIntercept 0 (required by DX, written for CR too).
UIDs are deterministic: generated from (seed, index, site) with pydicom's generate_uid
entropy sources, so rewriting a case gives byte-identical UIDs. A valid file meta header
(passes pydicom.dcmread and dcmtk dcmdump).

Transfer syntaxes (`transfer_syntax=`, the names of `radz synth --transfer-syntax`), encoded with
the libraries pydicom's own plugins use, or imagecodecs where they cannot encode:
    explicit-le     Explicit VR Little Endian (default, uncompressed)
    rle             RLE Lossless                   pydicom.compress (pylibjpeg-rle, else pydicom's own)
    jpeg-lossless   JPEG Lossless SV1 (process 14) imagecodecs (libjpeg-turbo), precision = BitsStored
    jpeg-baseline   JPEG Baseline 8-bit, lossy     imagecodecs (libjpeg-turbo, quality 90); the image
                    is rescaled to 8 bits (BitsAllocated/Stored 8) and the window with it
    jpeg-ls         JPEG-LS Lossless               pydicom.compress (pyjpegls)
    j2k-lossless    JPEG 2000 Lossless             pydicom.compress (pylibjpeg-openjpeg)
    j2k             JPEG 2000, lossy, 10:1         pydicom.compress (pylibjpeg-openjpeg, j2k_cr=[10])
    htj2k-lossless  HTJ2K Lossless                 imagecodecs (OpenJPH); its codestreams are 16-bit,
                    so BitsStored is 16 (the values still span the site's 12..16-bit range)
Lossy syntaxes set LossyImageCompression "01" with its ratio and method.

Public API:
    CR_SOP_CLASS, DX_SOP_CLASS
    case_dataset(case, *, modality=None, bits=None, monochrome=None) -> pydicom.Dataset
    write_case(case, path, **same options) -> str
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from radz_engine.io.transfer_syntaxes import LOSSY, TRANSFER_SYNTAXES
from radz_train.data.phantom import SITES, PhantomCase, to_stored

if TYPE_CHECKING:  # pragma: no cover
    import pydicom

__all__ = ["CR_SOP_CLASS", "DX_SOP_CLASS", "TRANSFER_SYNTAXES", "LOSSY", "case_dataset", "write_case", "uids_for"]

CR_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.1"
DX_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.1.1"
_FIXED_DATE, _FIXED_TIME = "20240101", "120000"  # deterministic files; not real dates
J2K_RATIO = 10.0
JPEG_QUALITY = 90


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
    case: PhantomCase,
    *,
    modality: str | None = None,
    bits: int | None = None,
    monochrome: str | None = None,
    transfer_syntax: str = "explicit-le",
) -> pydicom.Dataset:
    """A complete DICOM dataset (with file meta) for one phantom case.

    Args:
        case: the generated case (its site gives the defaults).
        modality: "CR" or "DX" (default: the site's).
        bits: BitsStored 12..16 (default: the site's).
        monochrome: "MONOCHROME1" or "MONOCHROME2" (default: the site's).
        transfer_syntax: a name from `TRANSFER_SYNTAXES` (see the module docstring).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    style = SITES[case.site]
    modality = modality or style.modality
    bits = style.bits_stored if bits is None else bits
    monochrome = monochrome or style.photometric
    if modality not in ("CR", "DX"):
        raise ValueError(f"modality must be 'CR' or 'DX', got {modality!r}")
    if transfer_syntax not in TRANSFER_SYNTAXES:
        raise ValueError(f"transfer_syntax must be one of {tuple(TRANSFER_SYNTAXES)}, got {transfer_syntax!r}")
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
    if transfer_syntax != "explicit-le":
        _compress(ds, stored, transfer_syntax)
    return ds


def _compress(ds: pydicom.Dataset, stored, name: str) -> None:
    """Re-encode `ds`'s pixels (`stored`, uint16) with the transfer syntax `name`, in place."""
    import numpy as np
    from pydicom.uid import UID

    uid = UID(TRANSFER_SYNTAXES[name])
    if name in ("rle", "jpeg-ls", "j2k-lossless", "j2k"):
        plugin = {"rle": _rle_plugin(), "jpeg-ls": "pyjpegls", "j2k-lossless": "pylibjpeg", "j2k": "pylibjpeg"}[name]
        options = {"j2k_cr": [J2K_RATIO]} if name == "j2k" else {}
        ds.compress(uid, encoding_plugin=plugin, generate_instance_uid=False, **options)
    else:
        import imagecodecs

        if name == "jpeg-lossless":
            frame = imagecodecs.jpeg8_encode(stored, lossless=True, predictor=1, bitspersample=int(ds.BitsStored))
        elif name == "htj2k-lossless":
            ds.BitsStored, ds.HighBit = 16, 15  # OpenJPH writes 16-bit codestreams for uint16
            frame = imagecodecs.htj2k_encode(stored, reversible=True)
        else:  # jpeg-baseline: 8 bits; v8 = v * s keeps the LINEAR window's display (c - 0.5, w - 1 scale)
            scale = 255.0 / float(2 ** int(ds.BitsStored) - 1)
            stored8 = np.rint(stored.astype(np.float64) * scale).astype(np.uint8)
            center, width = float(ds.WindowCenter), float(ds.WindowWidth)
            ds.WindowCenter = f"{(center - 0.5) * scale + 0.5:.3f}"
            ds.WindowWidth = f"{(width - 1.0) * scale + 1.0:.3f}"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
            frame = imagecodecs.jpeg8_encode(stored8, level=JPEG_QUALITY)
        _encapsulate(ds, uid, frame)
    if name in LOSSY:
        ratio = (int(ds.Rows) * int(ds.Columns) * (2 if name == "j2k" else 1)) / max(1, _frame_bytes(ds))
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionRatio = f"{ratio:.2f}"[:16]
        ds.LossyImageCompressionMethod = "ISO_15444_1" if name == "j2k" else "ISO_10918_1"


def _rle_plugin() -> str:
    from pydicom.pixels import get_encoder
    from pydicom.uid import RLELossless

    return "pylibjpeg" if "pylibjpeg" in get_encoder(RLELossless).available_plugins else "pydicom"


def _encapsulate(ds: pydicom.Dataset, uid, frame: bytes) -> None:
    from pydicom.encaps import encapsulate

    ds.PixelData = encapsulate([bytes(frame)])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = uid


def _frame_bytes(ds: pydicom.Dataset) -> int:
    from pydicom.encaps import generate_frames

    return sum(len(f) for f in generate_frames(ds.PixelData, number_of_frames=1))


def write_case(
    case: PhantomCase,
    path: str | os.PathLike,
    *,
    modality: str | None = None,
    bits: int | None = None,
    monochrome: str | None = None,
    transfer_syntax: str = "explicit-le",
) -> str:
    """Write `case` to `path` as a DICOM Part 10 file; returns the path."""
    ds = case_dataset(case, modality=modality, bits=bits, monochrome=monochrome, transfer_syntax=transfer_syntax)
    path = os.fspath(path)
    ds.save_as(path, enforce_file_format=True)
    return path
