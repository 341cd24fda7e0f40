"""write_bundle: a trained RadzModel (or a checkpoint folder) -> a runtime bundle folder.

The layout is documented in radz_engine/bundle/loader.py (the reader) and
radz_engine/bundle/format.py (version, file roles, hashing). Order of work:
export both encoders (+ fp16 image encoder) -> graph parity (raises on failure) -> tokenizer,
class embeddings, classes.json -> manifest with SHA-256 of every file -> runtime parity (the
torch-free text path, zero-shot AUC) -> manifest rewritten with the parity table.
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radz_engine.bundle.card import INTENDED_USES, PRIVATE_CODES_LIMITATION, CardError, validate_card
from radz_engine.bundle.format import FILES, FORMAT_VERSION, FP16_FILE, MANIFEST, PROMPT_BLOCKS, write_manifest
from radz_export import onnx_export, parity


@dataclass
class ExportReport:
    """What write_bundle produced: the folder, its manifest and every parity row it checked."""

    path: Path
    manifest: dict
    rows: list = field(default_factory=list)


def _tool_versions() -> dict[str, str]:
    import importlib.metadata as metadata

    versions = {"python": platform.python_version()}
    for dist in (
        "torch",
        "transformers",
        "peft",
        "tokenizers",
        "onnx",
        "onnxruntime",
        "onnxscript",
        "onnxconverter-common",
        "radz-engine",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    import radz_engine

    versions["radz_engine"] = radz_engine.__version__
    return versions


def _load(checkpoint_dir_or_model):
    """(model, source description, train config or {})."""
    if isinstance(checkpoint_dir_or_model, (str, Path)):
        from radz_train.training.checkpoint import load_model

        path = Path(checkpoint_dir_or_model)
        model = load_model(path, device="cpu")
        train = json.loads((path / "train_config.json").read_text())
        return model, str(path), train
    return checkpoint_dir_or_model, "in-memory RadzModel", {}


def _prepare_out_dir(out: Path) -> None:
    """Refuse to mix a bundle into an unrelated folder; replace an older bundle cleanly."""
    if out.exists() and any(out.iterdir()):
        manifest = out / MANIFEST
        if not manifest.exists():
            raise FileExistsError(
                f"--out {out}: folder is not empty and holds no bundle; choose an empty or new folder"
            )
        old = json.loads(manifest.read_text())
        for name in list(old.get("sha256", {})) + [MANIFEST]:
            target = out / name
            if target.is_file() and target.resolve().parent == out.resolve():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _save_tokenizer(tokenizer, path: Path) -> None:
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if backend is None:
        raise ValueError(
            f"tokenizer {type(tokenizer).__name__}: not a fast (tokenizers-backed) tokenizer; "
            "the runtime needs tokenizer.json"
        )
    backend.save(str(path))


def _text_spec(model) -> dict:
    tok = model.tokenizer
    prompts = model.config.prompts
    return {
        "bos_id": tok.bos_token_id,
        "pad_id": tok.pad_token_id,
        "question": prompts.text_question,
        "question_ids": list(model.question_ids),
        "modality_tokens": tok.convert_ids_to_tokens(model.text_token_ids.tolist()),
        "modality_token_ids": model.text_token_ids.tolist(),
        "max_length": int(model.config.max_text_length),
        "lowercase": True,
        "add_special_tokens": False,
        "padding_side": "right",
        "templates": {
            "class": prompts.class_template,
            "positive": prompts.positive_template,
            "negative": prompts.negative_template,
        },
        "layout": "[bos] lower(text)[:max_length - len(bos) - len(question_ids) - len(modality)] question_ids modality pad...",
    }


def _classes_doc(model, classes: Sequence[str], knowledge: dict[str, str], background: bool) -> dict:
    from radz_train.dkam import canonical_name, display_name
    from radz_train.zero_shot import BACKGROUND

    prompts = model.config.prompts
    rows = []
    for name in classes:
        shown = display_name(name)
        rows.append(
            {
                "name": name,
                "display_name": shown,
                "prompt": prompts.class_template.format(shown),
                "positive_prompt": prompts.positive_template.format(shown),
                "negative_prompt": prompts.negative_template.format(shown),
                "knowledge": knowledge.get(canonical_name(name)),
                "threshold": None,
            }
        )
    doc = {"classes": rows, "background": None, "thresholds": "null until calibrated (radz_engine.scoring.calibration)"}
    if background:
        doc["background"] = {"name": BACKGROUND, "knowledge": knowledge[BACKGROUND]}
    return doc


def load_card_file(path: str | Path) -> dict:
    """A model card JSON file (`radz export --card FILE`): an object with the card's fields."""
    path = Path(path)
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"--card {path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"--card {path}: not valid JSON ({error})") from None
    if not isinstance(card, dict):
        raise ValueError(f"--card {path}: must be a JSON object with the card's fields (docs/MODEL_CARD.md)")
    return card


def build_card(
    card: dict | None,
    *,
    name: str,
    version: str,
    train: dict,
    command: str,
    auc: dict | None = None,
    require_intended_use: bool = False,
) -> dict:
    """The card written into the manifest: the given fields, completed where they can be derived
    (name: the bundle folder; version: radz-engine's; training data: the checkpoint's training CSV;
    evaluation: the export's zero-shot AUC parity check on phantoms; the private-codes limitation
    always). The intended use is never derived: without it, require_intended_use raises, else the
    card says "research". Raises CardError naming the field."""
    card = dict(card or {})
    if not card.get("intended_use"):
        if require_intended_use:
            raise CardError(
                "card.intended_use",
                f"missing: give --intended-use ({' | '.join(INTENDED_USES)}) or an 'intended_use' in --card",
            )
        card["intended_use"] = "research"
    card.setdefault("name", name)
    card.setdefault("version", version)
    card.setdefault("licence", "not stated")
    data = card.get("training_data")
    if data is None or isinstance(data, str):
        described = data or (
            f"the training CSV {train['train_csv']} (not described further)"
            if train.get("train_csv")
            else "not recorded (exported from an in-memory model)"
        )
        card["training_data"] = {"description": described, "synthetic": False}
    elif isinstance(data, dict):
        card["training_data"] = {"synthetic": False, **data}
    evaluation = card.get("evaluation")
    if evaluation is None:
        if auc:
            card["evaluation"] = {
                "summary": f"zero-shot AUC on {auc['n']} phantoms, measured by the export's parity check "
                "(phantoms only: says nothing about real images)",
                "metrics": {"zero_shot_auc": {mode: row["bundle"] for mode, row in auc["modes"].items()}},
                "command": command,
            }
        else:
            card["evaluation"] = {"summary": "not evaluated", "metrics": {}, "command": ""}
    limitations = card.get("limitations")
    if limitations is None:
        limitations = []
    elif isinstance(limitations, str):
        limitations = [limitations]
    if isinstance(limitations, list) and PRIVATE_CODES_LIMITATION not in limitations:
        limitations = [*limitations, PRIVATE_CODES_LIMITATION]
    card["limitations"] = limitations
    return validate_card(card)


def write_bundle(
    checkpoint_dir_or_model,
    out_dir,
    *,
    classes: Sequence[str] | None = None,
    knowledge: dict[str, str] | str | Path | None = None,
    scoring_mode: str = "anchor",
    fp16: bool = False,
    parity_checks: bool = True,
    auc_phantoms: int = 64,
    exporter: str = "dynamo",
    external_data: bool | None = None,
    external_data_threshold: int = onnx_export.EXTERNAL_DATA_THRESHOLD,
    command: str | None = None,
    threads: int = 1,
    card: dict | None = None,
    require_intended_use: bool = False,
) -> ExportReport:
    """Export a model to a bundle folder; returns an ExportReport (manifest + parity rows).

    Args:
        checkpoint_dir_or_model: a `radz train` checkpoint folder, or a RadzModel. A model object
            is moved to CPU fp32 and its LoRA adapters are merged into it in place.
        out_dir: an empty/new folder, or an older bundle (replaced).
        classes: class names (default: the phantom findings).
        knowledge: {class: description}, a knowledge JSON path, or None (the checkpoint's training
            knowledge file, else the shipped one).
        scoring_mode: "anchor", "softmax" or "posneg" (the runtime's default).
        fp16: also write image_encoder_fp16.onnx (fp16 weights, float32 io).
        parity_checks: run the parity checks (raise ExportParityError on failure).
        auc_phantoms: phantoms for the zero-shot AUC parity check (0 skips it).
        exporter: "dynamo" (default) or "torchscript".
        external_data: force (True) / forbid (False) ONNX external data; None decides by size.
        command: the command line to record (the CLI passes its argv).
        card: the model card's fields (docs/MODEL_CARD.md); missing ones are derived where they
            can be (build_card). Without an intended use the card says "research", or, with
            require_intended_use (`radz export`), nothing is written and CardError is raised.
    """
    from radz_train.data.phantom import FINDINGS
    from radz_train.dkam import load_knowledge
    from radz_train.zero_shot import BACKGROUND, MODES, class_embeddings

    if scoring_mode not in MODES:
        raise ValueError(f"scoring_mode: must be one of {MODES}, got {scoring_mode!r}")
    model, source, train = _load(checkpoint_dir_or_model)
    model.to("cpu").float().eval()
    classes = list(classes) if classes is not None else list(FINDINGS)
    if not classes:
        raise ValueError("classes: need at least one class")
    if not isinstance(knowledge, dict):
        knowledge = load_knowledge(knowledge or train.get("knowledge"))
    out = Path(out_dir)
    command = command or (
        f"radz_export.write_bundle({source!r}, {str(out)!r}, classes={classes!r}, "
        f"scoring_mode={scoring_mode!r}, fp16={fp16})"
    )
    versions = _tool_versions()
    version = versions.get("radz-engine") or versions["radz_engine"]  # what Bundle.version derives
    card_args = {"name": out.resolve().name, "version": version, "train": train, "command": command}
    # Checked before any work: a bundle without intended use is never written.
    build_card(card, require_intended_use=require_intended_use, **card_args)
    _prepare_out_dir(out)

    kwargs = {"exporter": exporter, "external_data": external_data, "external_data_threshold": external_data_threshold}
    image = onnx_export.export_image_encoder(model, out / FILES["image_encoder"], **kwargs)
    text = onnx_export.export_text_encoder(model, out / FILES["text_encoder"], **kwargs)
    exported = {"image_encoder": image, "text_encoder": text}
    files = dict(FILES)
    if fp16:
        exported["image_encoder_fp16"] = onnx_export.convert_fp16(
            image.path, out / FP16_FILE, external_data=external_data
        )
        files["image_encoder_fp16"] = FP16_FILE
    rows = []
    if parity_checks:
        rows = parity.check_exported(model, image.path, text.path, out / FP16_FILE if fp16 else None, threads=threads)

    _save_tokenizer(model.tokenizer, out / FILES["tokenizer"])
    embeddings = class_embeddings(model, classes, knowledge)
    background = embeddings["anchor"].shape[0] == len(classes) + 1
    np.save(out / FILES["anchors"], embeddings["anchor"].astype(np.float32))
    prompts = np.stack([embeddings["softmax"], embeddings["posneg"][0], embeddings["posneg"][1]]).astype(np.float32)
    np.save(out / FILES["prompts"], prompts)
    (out / FILES["classes"]).write_text(json.dumps(_classes_doc(model, classes, knowledge, background), indent=2))

    config = model.config
    size = config.image_size
    manifest = {
        "format_version": FORMAT_VERSION,
        # The identity (Bundle.name / version) is the card's name and version when given, else
        # the folder's name and radz-engine's version, which the derived card holds too.
        **{key: str(card[key]) for key in ("name", "version") if (card or {}).get(key)},
        "card": build_card(card, **card_args),
        "model": {
            "name": config.name,
            "source": source,
            "lora_merged": config.train_decoder == "lora",
            "config": config.to_dict(),
        },
        "files": files,
        "input": {
            "size": [size, size],
            "channels": 3,
            "layout": "NCHW",
            "dtype": "float32",
            "mean": list(config.input["mean"]),
            "std": list(config.input["std"]),
            "aspect": "letterbox",
            "pad_value": 0.0,
        },
        "embedding_dim": int(config.decoder["hidden_size"]),
        "pooling": {
            "feature_layer": config.feature_layer,
            "hidden_states_index": onnx_export.resolved_feature_layer(config),
            "global": "mean of modality-token states" if config.n_image_tokens else "last real token",
            "n_image_tokens": config.n_image_tokens,
            "n_text_tokens": config.n_text_tokens,
            "normalize": "l2",
        },
        "tau": float(config.tau),
        "scoring_mode": scoring_mode,
        "classes": classes,
        "anchors": {
            "file": FILES["anchors"],
            "rows": classes + ([BACKGROUND] if background else []),
            "background_row": len(classes) if background else None,
        },
        "prompts": {"file": FILES["prompts"], "blocks": list(PROMPT_BLOCKS), "shape": list(prompts.shape)},
        "text": _text_spec(model),
        "onnx": {
            role: {
                "inputs": e.inputs,
                "outputs": e.outputs,
                "external_data": e.external_files,
                "exporter": e.exporter,
                "opset": e.opset,
            }
            for role, e in exported.items()
        },
        "export": onnx_export.export_summary(model),
        "versions": versions,
        "command": command,
        "parity": {"graph": parity.rows_to_json(rows)},
    }
    write_manifest(out, manifest)
    if parity_checks:
        # The torch-free path the runtime uses to add classes: tokenizer.json + text_encoder.onnx.
        probe = [row["prompt"] for row in _classes_doc(model, classes, knowledge, background)["classes"]]
        probe += [knowledge[name] for name in list(knowledge)[:4]]
        text_rows = parity.check_runtime_text(model, out, probe, threads=threads)
        parity.require(text_rows)
        rows += text_rows
        manifest["parity"]["graph"] = parity.rows_to_json(rows)
        if auc_phantoms:
            auc = parity.auc_parity(model, out, n=auc_phantoms, threads=threads)
            manifest["parity"]["zero_shot_auc"] = auc
            manifest["card"] = build_card(card, auc=auc, **card_args)
        write_manifest(out, manifest)
    return ExportReport(out, manifest, rows)


def command_line(argv: Sequence[str] | None = None) -> str:
    """The exact command to record: `radz export ...` as typed."""
    import shlex

    args = list(sys.argv[1:] if argv is None else argv)
    return "radz export " + " ".join(shlex.quote(a) for a in args)


__all__ = ["write_bundle", "build_card", "load_card_file", "ExportReport", "FILES", "FORMAT_VERSION", "command_line"]
