"""torch -> ONNX for the two encoders of a RadzModel, plus the fp16 variant.

Exporter: the torch.export-based exporter (`torch.onnx.export(..., dynamo=True)`, needs
onnxscript). It is the maintained path since torch 2.9 (the TorchScript exporter warns that it
will be removed), declares dynamic batch/length with `torch.export.Dim`, keeps the embedding
size static in the output shape and gives a graph about a third the size of the TorchScript
one (onnxscript's optimiser folds the shape arithmetic). `exporter="torchscript"` is kept as a
fallback; both give the same outputs to ~1e-7 on the tiny preset.

Large models: weights go to `<name>.onnx.data` (ONNX external data) when the encoder's weights
pass `external_data_threshold` bytes (protobuf cannot hold more than 2 GiB), or when forced.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from radz_export.encoders import ImageEncoder, TextEncoder, resolved_feature_layer

IMAGE_INPUTS = ("pixel_values",)
IMAGE_OUTPUTS = ("image_embedding",)
TEXT_INPUTS = ("input_ids", "attention_mask")
TEXT_OUTPUTS = ("text_embedding",)
EXPORTERS = ("dynamo", "torchscript")
OPSET = 20
# Below protobuf's 2 GiB ceiling with room for the graph itself.
EXTERNAL_DATA_THRESHOLD = 1_500_000_000


@dataclass
class ExportedModel:
    """One written ONNX file: its path, external-data files beside it, and its io spec."""

    path: Path
    external_files: list[str] = field(default_factory=list)
    inputs: list[dict] = field(default_factory=list)
    outputs: list[dict] = field(default_factory=list)
    exporter: str = "dynamo"
    opset: int = OPSET


def prepare_for_export(model) -> None:
    """Eval mode and LoRA merged into the base weights (peft wrappers do not export cleanly)."""
    from radz_train.model.trainable import merge_lora

    merge_lora(model)
    model.eval()


@contextlib.contextmanager
def eager_attention(model):
    """Plain MatMul/Softmax attention while exporting: every runtime (ORT CPU, TensorRT) fuses it
    itself, and it avoids relying on each exporter's SDPA translation. Restored afterwards."""
    configs = [m.config for m in (model.decoder, model.vision_tower) if hasattr(m, "config")]
    before = [getattr(c, "_attn_implementation", None) for c in configs]
    try:
        for c in configs:
            c._attn_implementation = "eager"
        yield
    finally:
        for c, value in zip(configs, before):
            c._attn_implementation = value


@contextlib.contextmanager
def _quiet_exporter():
    """Silence known, harmless third-party noise during export (narrowly, by message).

    - torch.onnx's registry logs that torchvision ops are skipped (torchvision is not needed);
    - torch.export's pytree emits a FutureWarning about its own LeafSpec use;
    - the dynamo exporter warns when two inputs share a Dim name (they do on purpose);
    - the TorchScript exporter warns that it is deprecated and traces transformers' bool checks.
    """
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*", category=FutureWarning)
            warnings.filterwarnings("ignore", message=r"# The axis name: .* will not be used", category=UserWarning)
            warnings.filterwarnings(
                "ignore", message=r".*legacy TorchScript-based ONNX export.*", category=DeprecationWarning
            )
            warnings.filterwarnings("ignore", message=r"The feature will be removed", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            yield
    finally:
        logger.setLevel(level)


def _parameter_bytes(module: nn.Module) -> int:
    seen, total = set(), 0
    for tensor in list(module.parameters()) + list(module.buffers()):
        if id(tensor) not in seen:
            seen.add(id(tensor))
            total += tensor.numel() * tensor.element_size()
    return total


def _export(
    module: nn.Module,
    args: tuple,
    path: Path,
    input_names,
    output_names,
    dynamic: dict,
    exporter: str,
    external: bool,
    opset: int,
) -> None:
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter: must be one of {EXPORTERS}, got {exporter!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    with _quiet_exporter(), torch.no_grad():
        if exporter == "dynamo":
            dims = {
                name: torch.export.Dim(name, min=1 if name == "batch" else 2, max=1 << 16)
                for axes in dynamic.values()
                for name in axes.values()
            }
            shapes = tuple({axis: dims[name] for axis, name in dynamic[i].items()} for i in input_names)
            program = torch.onnx.export(
                module,
                args,
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_shapes=shapes,
                opset_version=opset,
                dynamo=True,
                verbose=False,
            )
            # Per-node provenance (stack traces with this machine's paths, FX names) is dropped:
            # it is a quarter of a small graph and makes the bytes depend on where it was built.
            for node in program.model.graph.all_nodes():
                node.metadata_props.clear()
            program.save(str(path), external_data=external)
        else:
            axes = dict(dynamic)
            axes.update({name: {0: "batch"} for name in output_names})
            torch.onnx.export(
                module,
                args,
                str(path),
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
            )
            if external:
                _resave_external(path)


def _remove_stale(path: Path) -> None:
    # onnx appends to an existing external-data file, so an old one would grow and go stale.
    for stale in (path.with_name(path.name + ".data"),):
        if stale.exists():
            stale.unlink()


def _resave_external(path: Path) -> None:
    import onnx

    proto = onnx.load(str(path))
    _remove_stale(path)
    onnx.save_model(
        proto,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=path.name + ".data",
        size_threshold=0,
    )


def external_files(path: Path) -> list[str]:
    """File names (relative to the model's folder) that the model's external tensors point to."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, _get_all_tensors, uses_external_data

    proto = onnx.load(str(path), load_external_data=False)
    names = {ExternalDataInfo(t).location for t in _get_all_tensors(proto) if uses_external_data(t)}
    return sorted(names)


def io_spec(path: Path) -> tuple[list[dict], list[dict]]:
    """[{name, dtype, shape}] of the graph inputs and outputs (symbolic dims as strings)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)

    def describe(values):
        out = []
        for v in values:
            tensor = v.type.tensor_type
            shape = [d.dim_param if d.dim_param else int(d.dim_value) for d in tensor.shape.dim]
            out.append(
                {"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name, "shape": shape}
            )
        return out

    return describe(proto.graph.input), describe(proto.graph.output)


def _finish(path: Path, exporter: str, opset: int) -> ExportedModel:
    import onnx

    # Path form: works past 2 GiB (external data) where the in-memory form cannot.
    onnx.checker.check_model(str(path))
    inputs, outputs = io_spec(path)
    return ExportedModel(path, external_files(path), inputs, outputs, exporter, opset)


def _decide_external(module: nn.Module, external_data: bool | None, threshold: int) -> bool:
    return bool(external_data) if external_data is not None else _parameter_bytes(module) > threshold


def export_image_encoder(
    model,
    path,
    *,
    exporter: str = "dynamo",
    external_data: bool | None = None,
    external_data_threshold: int = EXTERNAL_DATA_THRESHOLD,
    opset: int = OPSET,
) -> ExportedModel:
    """Write image_encoder.onnx: pixel_values [B, 3, S, S] float32 -> image_embedding [B, D]."""
    path = Path(path)
    prepare_for_export(model)
    with eager_attention(model):
        encoder = ImageEncoder(model).eval()
        size = model.config.image_size
        example = (torch.randn(2, 3, size, size),)  # batch 2: a batch-1 example can freeze the batch dim
        external = _decide_external(encoder, external_data, external_data_threshold)
        _export(
            encoder,
            example,
            path,
            IMAGE_INPUTS,
            IMAGE_OUTPUTS,
            {"pixel_values": {0: "batch"}},
            exporter,
            external,
            opset,
        )
    return _finish(path, exporter, opset)


def export_text_encoder(
    model,
    path,
    *,
    exporter: str = "dynamo",
    external_data: bool | None = None,
    external_data_threshold: int = EXTERNAL_DATA_THRESHOLD,
    opset: int = OPSET,
) -> ExportedModel:
    """Write text_encoder.onnx: input_ids, attention_mask [B, L] int64 -> text_embedding [B, D]."""
    path = Path(path)
    prepare_for_export(model)
    with eager_attention(model):
        encoder = TextEncoder(model).eval()
        # Two rows of different lengths, so padding and the modality positions are not constants.
        batch = model.tokenize(["pleural effusion", "no acute cardiopulmonary process in this study"])
        example = (batch["input_ids"], batch["attention_mask"])
        external = _decide_external(encoder, external_data, external_data_threshold)
        dynamic = {"input_ids": {0: "batch", 1: "length"}, "attention_mask": {0: "batch", 1: "length"}}
        _export(encoder, example, path, TEXT_INPUTS, TEXT_OUTPUTS, dynamic, exporter, external, opset)
    return _finish(path, exporter, opset)


def convert_fp16(src, dst, *, external_data: bool | None = None) -> ExportedModel:
    """fp16 weights and compute with float32 inputs/outputs (onnxconverter-common).

    Cast nodes stay float32 ("Cast" is blocked): the exporter's casts (e.g. rotary position ids
    to float) otherwise come out with mismatched types that ONNX Runtime refuses to load.
    """
    import onnx

    try:
        from onnxconverter_common import float16
    except ImportError as error:
        raise ImportError("fp16 export needs onnxconverter-common: pip install 'radz-engine[export]'") from error
    src, dst = Path(src), Path(dst)
    proto = onnx.load(str(src))
    with warnings.catch_warnings():
        # Constants outside fp16 range (the mask's float32 min, tiny epsilons) are clamped: expected.
        warnings.filterwarnings("ignore", message=r"the float32 number .* will be truncated to", category=UserWarning)
        half = float16.convert_float_to_float16(
            proto, keep_io_types=True, op_block_list=list(float16.DEFAULT_OP_BLOCK_LIST) + ["Cast"]
        )
    weight_bytes = sum(len(t.raw_data) for t in half.graph.initializer)
    external = bool(external_data) if external_data is not None else weight_bytes > EXTERNAL_DATA_THRESHOLD
    _remove_stale(dst)
    if external:
        onnx.save_model(
            half,
            str(dst),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=dst.name + ".data",
            size_threshold=0,
        )
    else:
        onnx.save_model(half, str(dst))
    return _finish(dst, "onnxconverter-common float16 of " + src.name, max(o.version for o in half.opset_import))


def export_summary(model) -> dict:
    """What the exported graphs contain, for the manifest."""
    total = int(model.config.decoder["num_hidden_layers"])
    return {
        "decoder_layers_exported": resolved_feature_layer(model.config),
        "decoder_layers_total": total,
        "note": "decoder truncated after the pooled feature layer (later layers do not affect the features)",
    }
