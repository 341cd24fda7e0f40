"""The PyTorch side of a benchmark: the RadzModel that the eager reference (and the torch
backend) run, and a minimal stand-in for a bundle when a preset is benchmarked without one.

Where the model comes from, in order:
1. `--checkpoint DIR` (a `radz train` checkpoint folder): the trained weights;
2. the bundle's own checkpoint: manifest model.source, when that folder exists here;
3. random weights of the bundle's architecture (its manifest's model config, its tokenizer):
   the same computation, hence the same speed, but not the bundle's scores. The report says so.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ReferenceModel", "load_reference_model", "preset_model", "PresetBundle", "eager_copy"]

log = logging.getLogger(__name__)


@dataclass
class ReferenceModel:
    model: object  # radz_train.model.modeling.RadzModel
    weights: str  # "checkpoint DIR" / "random (...)"
    config: dict = field(default_factory=dict)


def _has_checkpoint(path) -> bool:
    path = Path(path)
    return path.is_dir() and all((path / n).exists() for n in ("model.safetensors", "model_config.json", "tokenizer"))


def _report_corpus(n: int = 200) -> list[str]:
    from radz_train.data.phantom import sample_findings
    from radz_train.data.reports import write_report

    return [write_report(sample_findings(i, seed=5), seed=i) for i in range(n)]


def load_reference_model(
    bundle,
    checkpoint=None,
    device: str = "cpu",
    dtype: str = "float32",
    allow_random: bool = True,
    force_random: bool = False,
) -> ReferenceModel:
    """The bundle's model in PyTorch (see the module docstring for where the weights come from)."""
    import torch

    if checkpoint is not None:
        if not _has_checkpoint(checkpoint):
            raise FileNotFoundError(
                f"--checkpoint {checkpoint}: not a `radz train` checkpoint folder "
                "(needs model.safetensors, model_config.json, tokenizer/)"
            )
        from radz_train.training.checkpoint import load_model

        model = load_model(Path(checkpoint), device="cpu")
        return ReferenceModel(_place(model, device, dtype), f"checkpoint {checkpoint}", model.config.to_dict())
    source = bundle.manifest.get("model", {}).get("source")
    if source and _has_checkpoint(source) and not force_random:
        from radz_train.training.checkpoint import load_model

        model = load_model(Path(source), device="cpu")
        return ReferenceModel(
            _place(model, device, dtype), f"checkpoint {source} (the bundle's model.source)", model.config.to_dict()
        )
    if not allow_random:
        raise FileNotFoundError(
            f"bundle {bundle.path}: carries no checkpoint (manifest model.source {source!r} is not here); the eager "
            "reference needs the model in PyTorch: pass --checkpoint DIR, or --reference random for random weights "
            "of the bundle's architecture (same compute and speed, different scores), or --reference none"
        )
    from transformers import PreTrainedTokenizerFast

    from radz_train.model.config import ModelConfig
    from radz_train.model.factory import create_model
    from radz_train.model.tokenizer import SPECIAL

    config = ModelConfig.from_dict(bundle.manifest["model"]["config"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(bundle.file("tokenizer")), **SPECIAL)
    with torch.device(device):
        model = create_model(config, tokenizer=tokenizer, seed=0)
    why = "asked for" if force_random else f"the bundle carries no checkpoint: model.source {source!r} is not here"
    reason = (
        f"random weights of the bundle's {config.name!r} architecture ({why}; pass --checkpoint DIR for the "
        "trained weights). Same compute, so the timings hold; the scores do not"
    )
    log.warning("radz bench: eager reference uses %s", reason)
    return ReferenceModel(_place(model, device, dtype), reason, config.to_dict())


def preset_model(
    name: str, device: str = "cpu", dtype: str = "float32", overrides: dict | None = None
) -> ReferenceModel:
    """Random weights of a preset (`tiny`, `small`, `paper`), built directly on the device in
    `dtype` (a 7B decoder initialised on the CPU in float32 would take minutes)."""
    import torch

    from radz_train.model.factory import create_model
    from radz_train.model.registry import get_model_config

    config = get_model_config(name, overrides)
    if config.tokenizer.get("type") == "checkpoint":  # the paper preset: a BPE stand-in of the same role
        config = config.with_overrides({"tokenizer": {"type": "bpe", "vocab_size": 2000}})
    # Inference: plain decoder weights (a trained LoRA is merged before export), so no adapters.
    config = config.with_overrides({"train_decoder": "frozen", "train_vision": False})
    previous = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        with torch.device(device):
            model = create_model(config, corpus=_report_corpus(), seed=0)
    finally:
        torch.set_default_dtype(previous)
    return ReferenceModel(model.eval(), f"random weights of preset {name!r}", config.to_dict())


def _place(model, device: str, dtype: str):
    import torch

    return model.to(device=device, dtype=getattr(torch, dtype)).eval()


def eager_copy(model, dtype: str):
    """The model itself in float32, else a copy cast to `dtype` (the plain PyTorch way to run
    bf16 / fp16: weights and activations in that type, no autocast)."""
    import torch

    target = getattr(torch, dtype)
    if all(p.dtype == target for p in model.parameters()):
        return model
    return copy.deepcopy(model).to(target).eval()


class PresetBundle:
    """What TorchBackend.load reads from a bundle (input spec, embedding size, path), for
    benchmarking a preset on random weights without exporting it to ONNX."""

    def __init__(self, config: dict) -> None:
        size = int(config["vision"]["image_size"])
        mean = config.get("input", {}).get("mean", [0.5] * 3)
        std = config.get("input", {}).get("std", [0.5] * 3)
        self.path = Path(f"<preset {config.get('name', '?')}>")
        self.input_spec = {"size": [size, size], "channels": 3, "mean": mean, "std": std, "aspect": "letterbox"}
        self.embedding_dim = int(config["decoder"]["hidden_size"])
        self.manifest = {"model": {"config": config}}
