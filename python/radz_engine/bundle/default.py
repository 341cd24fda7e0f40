"""The shipped default model: the `tiny` preset trained on phantoms by the project's own
commands (recorded in its manifest under "provenance"). The check that it still reaches its
recorded AUC on fresh phantoms is radz_train.evaluation.bundle_check (it needs the phantoms)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_BUNDLE = Path(__file__).resolve().parent.parent / "assets" / "default"


def default_bundle_path() -> Path:
    if not (DEFAULT_BUNDLE / "manifest.json").exists():
        raise FileNotFoundError(f"the default bundle is missing from {DEFAULT_BUNDLE} (a broken install?)")
    return DEFAULT_BUNDLE
