"""An int8 image encoder for a bundle: `radz quantize BUNDLE` (no torch needed).

ONNX Runtime's dynamic quantisation of the image encoder's MatMul/Gemm weights (int8 weights,
activations quantised per call, float32 io), written as `image_encoder_int8.onnx` beside the
float32 graph and checked before it is recorded in the manifest:
- embedding cosine to the float32 graph on random and phantom inputs (>= min_cosine);
- zero-shot macro AUC on fresh phantoms in every scoring mode (drop <= max_auc_drop).
A bundle failing either keeps no int8 file. The Engine uses it with
`backend_options={"int8": True}` (ONNX Runtime CPU; measured in docs/RUNTIME.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from radz_engine.bundle.format import INT8_FILE

__all__ = ["add_int8_encoder", "INT8_FILE", "QuantizationCheckError"]


class QuantizationCheckError(RuntimeError):
    """The int8 graph strays too far from the float32 one; nothing was added to the bundle."""


def _min_cosine(bundle, role: str, seed: int = 0) -> float:
    """Smallest embedding cosine between the float32 encoder and `role` on random and phantom inputs."""
    from radz_train.data.phantom import generate_cases
    from radz_train.evaluation.bundle_check import encoder_embeddings, phantom_inputs

    spec = bundle.input_spec
    shape = (int(spec["channels"]), int(spec["size"][0]), int(spec["size"][1]))
    random = np.random.default_rng(seed).standard_normal((16, *shape)).astype(np.float32)
    x = np.concatenate([random, phantom_inputs(bundle, generate_cases(16, seed=seed + 1, size=256))])
    a, b = encoder_embeddings(bundle, x), encoder_embeddings(bundle, x, role)
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(cosine.min())


def add_int8_encoder(
    bundle_path: str | Path,
    *,
    auc_phantoms: int = 300,
    seed: int = 7,
    site: str = "site_a",
    min_cosine: float = 0.99,
    max_auc_drop: float = 0.01,
) -> dict:
    """Quantise the bundle's image encoder, check it, record it in the manifest; returns the
    check report. Raises QuantizationCheckError (and removes the file) when a check fails."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from radz_engine.bundle.loader import load_bundle, sha256_file
    from radz_train.evaluation.bundle_check import phantom_auc

    bundle_path = Path(bundle_path)
    bundle = load_bundle(bundle_path)
    fp32 = bundle.file("image_encoder")
    if bundle.onnx_io("image_encoder").get("external_data"):
        raise ValueError(f"{fp32}: int8 quantisation of graphs with external data is not supported here")
    out = bundle_path / INT8_FILE
    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
    manifest_path = bundle_path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())

    def save(register: bool) -> None:
        if register:
            manifest["files"]["image_encoder_int8"] = INT8_FILE
            manifest["onnx"]["image_encoder_int8"] = dict(manifest["onnx"]["image_encoder"], external_data=[])
            manifest["sha256"][INT8_FILE] = sha256_file(out)
        else:
            manifest["files"].pop("image_encoder_int8", None)
            manifest["onnx"].pop("image_encoder_int8", None)
            manifest["sha256"].pop(INT8_FILE, None)
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")

    try:
        save(register=True)  # the checks load the new role from the bundle
        report = {
            "method": "onnxruntime.quantization.quantize_dynamic, QInt8 weights, MatMul/Gemm",
            "min_cosine": round(_min_cosine(load_bundle(bundle_path), "image_encoder_int8"), 6),
            "auc_phantoms": auc_phantoms,
        }
        if report["min_cosine"] < min_cosine:
            raise QuantizationCheckError(f"int8 embedding cosine {report['min_cosine']:.4f} < {min_cosine}")
        if auc_phantoms:
            before = phantom_auc(bundle_path, auc_phantoms, seed, site)
            after = phantom_auc(bundle_path, auc_phantoms, seed, site, role="image_encoder_int8")
            report["macro_auc"] = {
                m: {"fp32": round(before[m]["macro_auc"], 6), "int8": round(after[m]["macro_auc"], 6)} for m in before
            }
            drops = {m: round(r["fp32"] - r["int8"], 4) for m, r in report["macro_auc"].items()}
            if max(drops.values()) > max_auc_drop:
                raise QuantizationCheckError(
                    f"int8 macro AUC drops by {drops} (> {max_auc_drop}) on {auc_phantoms} "
                    f"phantoms (seed {seed}, {site})"
                )
    except BaseException:
        out.unlink(missing_ok=True)
        save(register=False)
        raise
    manifest.setdefault("parity", {})["int8"] = report
    save(register=True)
    load_bundle(bundle_path)  # still valid
    return report


def build_parser():
    from radz_engine.cli.options import parser as make_parser

    parser = make_parser("radz quantize", "`radz quantize BUNDLE`: add a checked int8 image encoder to a bundle.")
    parser.add_argument(
        "bundle_path", type=Path, nargs="?", default=None, metavar="BUNDLE", help="a bundle folder (or --bundle)"
    )
    parser.add_argument("--bundle", type=Path, default=None, help="a bundle folder (written by radz export)")
    parser.add_argument("--auc-phantoms", type=int, default=300, help="phantoms for the AUC check (0: skip)")
    parser.add_argument(
        "--min-cosine", type=float, default=0.99, help="least cosine between int8 and fp32 image embeddings"
    )
    parser.add_argument("--max-auc-drop", type=float, default=0.01, help="largest macro AUC loss allowed vs fp32")
    return parser


def main(argv: list[str] | None = None) -> int:
    """`radz quantize BUNDLE`: add a checked int8 image encoder to a bundle."""
    import sys

    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.bundle is None) == (args.bundle_path is None):
        parser.error("give the bundle folder once: radz quantize BUNDLE (or --bundle BUNDLE)")
    args.bundle = args.bundle or args.bundle_path
    from radz_engine.errors import BundleError

    try:
        report = add_int8_encoder(
            args.bundle, auc_phantoms=args.auc_phantoms, min_cosine=args.min_cosine, max_auc_drop=args.max_auc_drop
        )
    except (QuantizationCheckError, BundleError, ValueError, FileNotFoundError) as error:
        print(f"radz quantize: {error}", file=sys.stderr)
        return 1 if isinstance(error, QuantizationCheckError) else 2
    print(f"int8 image encoder added to {args.bundle}: embedding cosine >= {report['min_cosine']:.5f}")
    for mode, row in report.get("macro_auc", {}).items():
        print(
            f"  macro AUC ({mode}, {report['auc_phantoms']} phantoms): fp32 {row['fp32']:.4f}  int8 {row['int8']:.4f}"
        )
    return 0
