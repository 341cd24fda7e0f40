"""What a received dataset must satisfy before it is scored. A dataset that is malformed or
over a limit raises Rejection (the SCP answers its failure status with the reason, the journal
keeps it as `rejected`); one that is well-formed but not a radiograph radz scores gets a reason
back (acknowledged, journaled `ignored`, no SR). Wire values in reasons are escaped and bounded."""

from __future__ import annotations

from radz_engine.serve.config import SCORED_SOP_CLASSES, ServeConfig
from radz_engine.serve.privacy import escape

__all__ = ["check_dataset", "check_size", "Rejection"]


class Rejection(Exception):
    """A dataset refused at C-STORE: `status` is the DIMSE status, the message the reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# DIMSE C-STORE failure statuses (PS3.4 Annex B.2.3)
OUT_OF_RESOURCES = 0xA700
DATA_SET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000


def check_size(encoded_bytes: int, config: ServeConfig) -> None:
    """Raise Rejection when the encoded dataset is larger than --max-dataset-mb."""
    if encoded_bytes > config.max_dataset_bytes:
        raise Rejection(
            OUT_OF_RESOURCES,
            f"dataset of {encoded_bytes / 2**20:.1f} MiB exceeds the limit of "
            f"{config.max_dataset_mb:g} MiB (--max-dataset-mb)",
        )


def check_dataset(ds, encoded_bytes: int, config: ServeConfig) -> str | None:
    """Raise Rejection when `ds` must be refused (malformed or inconsistent, or over a limit);
    return a reason (str) when it is well-formed but not a radiograph radz scores (it is then
    acknowledged and journaled `ignored`); None when it is scored. The rule (docs/SERVE.md):
    only grayscale (MONOCHROME1/2, one sample per pixel), single-frame projection radiographs
    with consistent attributes and pixel data of the size they declare are scored; with a
    BodyPartExamined or ViewPosition, only those configured (--body-parts, --view-positions);
    Secondary Capture only when marked BodyPartExamined CHEST (or --secondary-capture any)."""
    check_size(encoded_bytes, config)
    sop_class = str(getattr(ds, "SOPClassUID", ""))
    if sop_class not in SCORED_SOP_CLASSES:
        raise Rejection(
            DATA_SET_DOES_NOT_MATCH_SOP_CLASS, f"SOP class {escape(sop_class, 64) or '(none)'} is not scored"
        )
    modality = str(ds.get("Modality", "") or "").upper()
    if modality not in config.allowed_modalities:
        raise Rejection(
            CANNOT_UNDERSTAND,
            f"modality {escape(modality, 16) or '(none)'} is not a radiograph "
            f"(allowed: {', '.join(config.allowed_modalities)})",
        )
    if "PixelData" not in ds:
        raise Rejection(CANNOT_UNDERSTAND, "no pixel data (7FE0,0010)")
    rows, columns = _int(ds, "Rows"), _int(ds, "Columns")
    if rows < 1 or columns < 1:
        raise Rejection(CANNOT_UNDERSTAND, f"image of {rows} x {columns} pixels")
    if rows > config.max_rows or columns > config.max_columns:
        raise Rejection(
            OUT_OF_RESOURCES,
            f"image of {rows} x {columns} pixels exceeds the limit of "
            f"{config.max_rows} x {config.max_columns} (--max-rows/--max-columns)",
        )
    samples = _int(ds, "SamplesPerPixel")
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    bits_allocated = _int(ds, "BitsAllocated")
    bits_stored = _int(ds, "BitsStored", bits_allocated)
    frames = _int(ds, "NumberOfFrames", 1)
    expected_samples = {"MONOCHROME1": 1, "MONOCHROME2": 1, "PALETTE COLOR": 1}.get(
        photometric, 3 if photometric in _COLOUR else None
    )
    if expected_samples is None:
        raise Rejection(CANNOT_UNDERSTAND, f"PhotometricInterpretation {escape(photometric, 16) or '(none)'} unknown")
    if samples != expected_samples:
        raise Rejection(
            CANNOT_UNDERSTAND,
            f"PhotometricInterpretation {photometric} with SamplesPerPixel {samples} (needs {expected_samples})",
        )
    if bits_allocated not in (1, 8, 16, 32) or not 1 <= bits_stored <= bits_allocated:
        raise Rejection(CANNOT_UNDERSTAND, f"BitsAllocated {bits_allocated} / BitsStored {bits_stored} inconsistent")
    if frames < 1:
        raise Rejection(CANNOT_UNDERSTAND, f"NumberOfFrames {frames}")
    _check_window(ds)
    if photometric in ("MONOCHROME1", "MONOCHROME2"):  # colour ones are never scored (sub-sampled sizes)
        _check_pixel_length(ds, rows, columns, samples, frames, bits_allocated)
    # Well-formed: is it a radiograph radz scores?
    if photometric != "MONOCHROME1" and photometric != "MONOCHROME2":
        return f"colour image (PhotometricInterpretation {photometric}): not a radiograph"
    if bits_allocated not in (8, 16):
        return f"BitsAllocated {bits_allocated}: radiographs are 8 or 16 bits"
    if frames != 1:
        return f"{frames} frames: not a single-frame projection radiograph"
    body_part = str(ds.get("BodyPartExamined", "") or "").strip().upper()
    if body_part and body_part not in config.body_parts:
        return f"BodyPartExamined {escape(body_part, 16)} not scored (--body-parts {','.join(config.body_parts)})"
    view = str(ds.get("ViewPosition", "") or "").strip().upper()
    if view and config.view_positions and view not in config.view_positions:
        return f"ViewPosition {escape(view, 16)} not scored (--view-positions {','.join(config.view_positions)})"
    if sop_class == SECONDARY_CAPTURE and config.secondary_capture != "any" and body_part not in config.body_parts:
        return "Secondary Capture not marked as a chest radiograph (BodyPartExamined; see --secondary-capture)"
    return None


SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_COLOUR = {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT"}


def _int(ds, keyword: str, default: int | None = None) -> int:
    value = ds.get(keyword, default)
    try:
        if value is None or value == "":
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise Rejection(CANNOT_UNDERSTAND, f"{keyword} missing or not an integer") from None


def _check_window(ds) -> None:
    """WindowWidth, when present, is >= 1 (PS3.3 C.11.2.1.2): 0 or less is inconsistent."""
    if "WindowWidth" not in ds:
        return
    value = ds.WindowWidth
    values = value if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue" else [value]
    try:
        widths = [float(v) for v in values if v is not None and v != ""]
    except (TypeError, ValueError):
        raise Rejection(CANNOT_UNDERSTAND, "WindowWidth not a number") from None
    if any(not w > 0 for w in widths):  # also NaN
        raise Rejection(CANNOT_UNDERSTAND, "WindowWidth <= 0 (must be >= 1)")


def _check_pixel_length(ds, rows: int, columns: int, samples: int, frames: int, bits_allocated: int) -> None:
    """Native (uncompressed) pixel data must hold at least what the header declares."""
    meta = getattr(ds, "file_meta", None)
    syntax = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if syntax is None or getattr(syntax, "is_compressed", True):
        return  # encapsulated: its decoder checks it
    pixels = rows * columns * samples * frames
    expected = (pixels + 7) // 8 if bits_allocated == 1 else pixels * (bits_allocated // 8)
    value = ds["PixelData"].value
    have = len(value) if value is not None else 0
    if have < expected:
        raise Rejection(CANNOT_UNDERSTAND, f"pixel data truncated: {have} bytes, the header declares {expected}")
