"""Model bundles: the format (format.py), reading and validating one (loader.py), and the
shipped default bundle (default.py), the model card (card.py). Torch-free."""

from radz_engine.bundle.card import INTENDED_USES, BundleFormatWarning, notice
from radz_engine.bundle.format import FORMAT_VERSION, sha256_file
from radz_engine.bundle.loader import Bundle, load_bundle
from radz_engine.errors import BundleError

__all__ = [
    "FORMAT_VERSION",
    "INTENDED_USES",
    "Bundle",
    "BundleError",
    "BundleFormatWarning",
    "load_bundle",
    "notice",
    "sha256_file",
]
