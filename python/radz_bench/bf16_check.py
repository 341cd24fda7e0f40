"""`radz bench check-bf16 BUNDLE`: accept OpenVINO bf16 for a bundle on this machine, with the
checks an int8 encoder passes (`radz quantize`): the smallest embedding cosine against the fp32
graph in ONNX Runtime on random and phantom inputs (>= 0.99) and the zero-shot macro AUC on fresh
phantoms in every scoring mode (drop <= 0.01).

bf16 is an OpenVINO inference precision hint, not a file, and what it computes depends on the CPU
(AMX or AVX-512 bf16 units; without either OpenVINO ignores the hint and runs f32). So the result
is recorded in the bundle's manifest as parity.openvino_bf16 with the CPU it ran on, and the
OpenVINO backend loads bf16 only for a passed record from the same CPU (openvino_backend.py).
A failed check removes an earlier record; a CPU without bf16 is refused before any check.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

__all__ = ["VariantCheckError", "check_variant", "check_openvino_bf16", "main"]


class VariantCheckError(RuntimeError):
    """The variant strays too far from the fp32 graph; nothing is recorded."""


def _write_manifest(bundle_path: Path, manifest: dict) -> None:
    path = bundle_path / "manifest.json"
    tmp = path.with_name(f".manifest.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, path)


def _embed(run, x: np.ndarray, batch: int = 32) -> np.ndarray:
    return np.concatenate([run(x[i : i + batch]) for i in range(0, len(x), batch)])


def _macro_auc(bundle, feats: np.ndarray, cases, modes) -> dict:
    from radz_engine.scoring.metrics import binary_auc
    from radz_engine.scoring.scores import class_scores

    classes = bundle.class_names
    labels = np.array([[c.labels[k] for k in classes] for c in cases], dtype=np.float64)
    out = {}
    for mode in modes:
        scores = class_scores(feats, bundle.embeddings(), mode, bundle.tau)
        aucs = [binary_auc(labels[:, j], scores[:, j]) for j in range(len(classes))]
        out[mode] = float(np.mean([a for a in aucs if a == a]))
    return out


def check_variant(
    bundle_path: str | Path,
    run,
    key: str,
    label: str,
    *,
    auc_phantoms: int = 300,
    seed: int = 7,
    site: str = "site_a",
    min_cosine: float = 0.99,
    max_auc_drop: float = 0.01,
    extra: dict | None = None,
) -> dict:
    """Check `run` ([B, C, H, W] -> [B, D] embeddings, the variant) against the bundle's fp32
    image encoder in ONNX Runtime; on a pass record the report as manifest["parity"][key] and
    return it. Raises VariantCheckError (after removing any earlier manifest["parity"][key])."""
    from radz_engine.bundle.loader import load_bundle
    from radz_train.data.phantom import generate_cases
    from radz_train.evaluation.bundle_check import encoder_embeddings, phantom_inputs

    bundle_path = Path(bundle_path)
    bundle = load_bundle(bundle_path)
    shape = tuple(int(v) for v in (bundle.input_spec["channels"], *bundle.input_spec["size"]))
    random = np.random.default_rng(seed).standard_normal((16, *shape)).astype(np.float32)
    x = np.concatenate([random, phantom_inputs(bundle, generate_cases(16, seed=seed + 1, size=256))])
    a, b = encoder_embeddings(bundle, x), _embed(run, x)
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    report = {
        **(extra or {}),
        "min_cosine": round(float(cosine.min()), 6),
        "min_cosine_limit": min_cosine,
        "cosine_inputs": "16 random + 16 phantom",
        "auc_phantoms": auc_phantoms,
    }
    manifest = json.loads((bundle_path / "manifest.json").read_text())

    def refuse(reason: str) -> VariantCheckError:
        if key in manifest.get("parity", {}):
            manifest["parity"].pop(key)
            _write_manifest(bundle_path, manifest)
        return VariantCheckError(f"{label}: {reason}; nothing recorded in {bundle_path}")

    if report["min_cosine"] < min_cosine:
        raise refuse(f"embedding cosine {report['min_cosine']:.5f} < {min_cosine} against fp32 ONNX Runtime")
    if auc_phantoms:
        modes = ("anchor", "softmax", "posneg")
        cases = list(generate_cases(auc_phantoms, seed=seed, sites=(site,), size=256))
        inputs = phantom_inputs(bundle, cases)
        before = _macro_auc(bundle, encoder_embeddings(bundle, inputs), cases, modes)
        after = _macro_auc(bundle, _embed(run, inputs), cases, modes)
        report.update(seed=seed, site=site, max_auc_drop_limit=max_auc_drop)
        report["macro_auc"] = {m: {"fp32": round(before[m], 6), label: round(after[m], 6)} for m in modes}
        drops = {m: round(before[m] - after[m], 4) for m in modes}
        if max(drops.values()) > max_auc_drop:
            raise refuse(
                f"macro AUC drops by {drops} (> {max_auc_drop}) on {auc_phantoms} phantoms (seed {seed}, {site})"
            )
    report["passed"] = True
    manifest.setdefault("parity", {})[key] = report
    _write_manifest(bundle_path, manifest)
    load_bundle(bundle_path)  # still valid
    return report


def check_openvino_bf16(bundle_path: str | Path, *, threads: int | None = None, **limits) -> dict:
    """OpenVINO bf16 on this CPU through check_variant, recorded as parity.openvino_bf16.
    Raises BackendUnavailable when the CPU or OpenVINO cannot run bf16 (nothing changes then)."""
    import openvino as ov

    from radz_engine.backends.openvino_backend import BF16_RECORD, OpenVINOBackend, cpu_identity
    from radz_engine.bundle.loader import load_bundle

    backend = OpenVINOBackend(threads=threads, precision="bf16", require_check=False)
    backend.load(load_bundle(bundle_path), "cpu")
    try:
        extra = {
            "method": "OpenVINO CPU, INFERENCE_PRECISION_HINT bf16, the bundle's image_encoder.onnx",
            "openvino": ov.__version__,
            **cpu_identity(ov.Core()),
        }
        return check_variant(bundle_path, backend.run, BF16_RECORD, "bf16", extra=extra, **limits)
    finally:
        backend.close()


def build_parser():
    from radz_engine.cli.options import add_threads, parser

    p = parser(
        "radz bench check-bf16",
        "Accept OpenVINO bf16 for a bundle on this CPU (embedding cosine and phantom AUC against fp32); "
        "records parity.openvino_bf16 in its manifest.",
    )
    p.add_argument("bundle_path", type=Path, nargs="?", default=None, metavar="BUNDLE", help="a bundle folder")
    p.add_argument("--bundle", type=Path, default=None, help="a bundle folder (or BUNDLE)")
    p.add_argument("--auc-phantoms", type=int, default=300, help="phantoms for the AUC check (0: skip)")
    p.add_argument("--min-cosine", type=float, default=0.99, help="least cosine between bf16 and fp32 embeddings")
    p.add_argument("--max-auc-drop", type=float, default=0.01, help="largest macro AUC loss allowed vs fp32")
    add_threads(p, help="OpenVINO inference threads (default: all cores)")
    return p


def main(argv: list[str]) -> int:
    import sys

    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.bundle is None) == (args.bundle_path is None):
        parser.error("give the bundle folder once: radz bench check-bf16 BUNDLE (or --bundle BUNDLE)")
    bundle = args.bundle or args.bundle_path
    from radz_engine.errors import BundleError, RadzError

    try:
        report = check_openvino_bf16(
            bundle,
            threads=args.threads,
            auc_phantoms=args.auc_phantoms,
            min_cosine=args.min_cosine,
            max_auc_drop=args.max_auc_drop,
        )
    except ImportError:
        print("radz bench check-bf16: needs openvino: pip install 'radz-engine[openvino]'", file=sys.stderr)
        return 2
    except (FileNotFoundError, BundleError) as error:  # not a usable bundle
        print(f"radz bench check-bf16: {error}", file=sys.stderr)
        return 2
    except (VariantCheckError, RadzError) as error:  # BackendUnavailable: no bf16 here; BundleError
        print(f"radz bench check-bf16: {error}", file=sys.stderr)
        return 1
    print(f"OpenVINO bf16 accepted for {bundle} on {report['cpu']}: embedding cosine >= {report['min_cosine']:.5f}")
    for mode, row in report.get("macro_auc", {}).items():
        print(
            f"  macro AUC ({mode}, {report['auc_phantoms']} phantoms): fp32 {row['fp32']:.4f}  bf16 {row['bf16']:.4f}"
        )
    return 0
