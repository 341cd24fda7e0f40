"""The transfer syntaxes of radiology archives by the names the project uses (`radz synth
--transfer-syntax NAME`, build_info()'s decoder list): plain constants, no pydicom import."""

from __future__ import annotations

__all__ = ["TRANSFER_SYNTAXES", "LOSSY"]

# name -> Transfer Syntax UID
TRANSFER_SYNTAXES = {
    "explicit-le": "1.2.840.10008.1.2.1",
    "rle": "1.2.840.10008.1.2.5",
    "jpeg-lossless": "1.2.840.10008.1.2.4.70",
    "jpeg-baseline": "1.2.840.10008.1.2.4.50",
    "jpeg-ls": "1.2.840.10008.1.2.4.80",
    "j2k-lossless": "1.2.840.10008.1.2.4.90",
    "j2k": "1.2.840.10008.1.2.4.91",
    "htj2k-lossless": "1.2.840.10008.1.2.4.201",
}
LOSSY = ("jpeg-baseline", "j2k")
