"""What a received dataset must satisfy before it is scored. Each check returns a reason
(str) naming what is wrong, or None; the SCP answers a failure status carrying that reason and
the journal keeps it."""

from __future__ import annotations

from radz_engine.serve.config import SCORED_SOP_CLASSES, ServeConfig

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


def check_dataset(ds, encoded_bytes: int, config: ServeConfig) -> None:
    """Raise Rejection when `ds` must not be scored; return None when it may be."""
    check_size(encoded_bytes, config)
    sop_class = str(getattr(ds, "SOPClassUID", ""))
    if sop_class not in SCORED_SOP_CLASSES:
        raise Rejection(DATA_SET_DOES_NOT_MATCH_SOP_CLASS, f"SOP class {sop_class or '(none)'} is not scored")
    modality = str(getattr(ds, "Modality", "")).upper()
    if modality not in config.allowed_modalities:
        raise Rejection(
            CANNOT_UNDERSTAND,
            f"modality {modality or '(none)'} is not a radiograph (allowed: {', '.join(config.allowed_modalities)})",
        )
    if "PixelData" not in ds:
        raise Rejection(CANNOT_UNDERSTAND, "no pixel data (7FE0,0010)")
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError):
        raise Rejection(CANNOT_UNDERSTAND, "Rows/Columns missing or not integers") from None
    if rows < 1 or columns < 1:
        raise Rejection(CANNOT_UNDERSTAND, f"image of {rows} x {columns} pixels")
    if rows > config.max_rows or columns > config.max_columns:
        raise Rejection(
            OUT_OF_RESOURCES,
            f"image of {rows} x {columns} pixels exceeds the limit of "
            f"{config.max_rows} x {config.max_columns} (--max-rows/--max-columns)",
        )
