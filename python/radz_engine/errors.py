"""Every exception radz_engine raises on purpose, under one base class `RadzError`.

Each also subclasses the built-in exception callers would have caught before (ValueError for
bad input, RuntimeError for a state problem, TimeoutError for a deadline), so existing
`except ValueError:` code keeps working. The C++ core's exceptions (QueueFull) are translated
to these classes by the bindings. Messages never carry patient data: readers build reasons from
tag names, sizes and transfer syntaxes only.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "RadzError",
    "RadzInputError",
    "DicomInputError",
    "RadzInputWarning",
    "BundleError",
    "BackendUnavailable",
    "EngineClosed",
    "QueueFull",
    "DeadlineExceeded",
    "RequestCancelled",
    "SimilarIndexError",
]


class RadzError(Exception):
    """Base class of every radz_engine error."""


class RadzInputError(RadzError, ValueError):
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


class BundleError(RadzError, ValueError):
    """A bundle could not be used. str() is "bundle <bundle>: <file>: <reason>".

    Attributes:
        bundle: the bundle folder.
        file: the file at fault, relative to the bundle folder (e.g. "text_encoder.onnx").
        reason: what is wrong with it.
    """

    def __init__(self, bundle: str | Path, file: str, reason: str) -> None:
        super().__init__(f"bundle {bundle}: {file}: {reason}")
        self.bundle = str(bundle)
        self.file = str(file)
        self.reason = str(reason)

    def __reduce__(self):
        return (type(self), (self.bundle, self.file, self.reason))


class BackendUnavailable(RadzError, RuntimeError):
    """The backend cannot run here (package not installed, no GPU, no engine file). The message
    says what is missing and how to get it."""


class EngineClosed(RadzError, RuntimeError):
    """submit() / classify() after close(), or a request the engine closed before it ran."""


class QueueFull(RadzError, RuntimeError):
    """The request queue stayed full (backpressure "reject", or "block" past its timeout)."""


class DeadlineExceeded(RadzError, TimeoutError):
    """A request's deadline passed before a runner took it; it never ran."""


class RequestCancelled(RadzError, RuntimeError):
    """A request was cancelled before a runner took it; it never ran."""


class SimilarIndexError(RadzError, ValueError):
    """A similar-case index could not be built, opened or queried. str() is "<where>: <reason>",
    where names the index file or the argument at fault (e.g. "idx/vectors.npy", "k")."""

    def __init__(self, where: str | Path, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = str(where)
        self.reason = str(reason)

    def __reduce__(self):
        return (type(self), (self.where, self.reason))
