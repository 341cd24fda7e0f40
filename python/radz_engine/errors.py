"""Exceptions and warnings for bad or unusual input images.

Input errors are `ValueError`s so that callers that already handle bad arguments keep working,
and they carry the offending source (a file name, or "<bytes>" / "<Dataset>") and a plain
reason. They never carry patient data: readers build reasons from tag names, sizes and
transfer syntaxes only.
"""

from __future__ import annotations

__all__ = ["RadzInputError", "DicomInputError", "RadzInputWarning"]


class RadzInputError(ValueError):
    """An input image could not be read. str() is "<source>: <reason>".

    Attributes:
        source: the file name as given, or "<bytes>" / "<Dataset>" for in-memory input.
        reason: why it was rejected, e.g. "not a DICOM file" or "Rows/Columns 0 x 512".
    """

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = str(source)
        self.reason = str(reason)

    def __reduce__(self):
        # Rebuild from (source, reason), not from the formatted message: errors travel back
        # from worker processes of the batch reader by pickling.
        return (type(self), (self.source, self.reason))


class DicomInputError(RadzInputError):
    """A DICOM input could not be read (not DICOM, no pixels, truncated, undecodable, ...)."""


class RadzInputWarning(UserWarning):
    """An input was read but changed on the way (e.g. colour converted to luminance)."""
