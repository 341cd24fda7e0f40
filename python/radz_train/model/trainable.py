"""Which parameters train (paper: LoRA on the decoder, projector, new token embeddings; vision
tower frozen) and the optimizer parameter groups (paper: 2e-5 for LoRA, tokens and heads, 2e-6 for
the projector)."""

from __future__ import annotations

import torch
from torch import nn

GROUPS = ("vision", "projector", "decoder", "tokens")


def configure_trainable(model) -> None:
    config = model.config
    model.vision_tower.requires_grad_(bool(config.train_vision))
    model.projector.requires_grad_(True)
    if config.train_decoder == "lora":
        model.decoder = apply_lora(model.decoder, config.lora)
    elif config.train_decoder == "frozen":
        model.decoder.requires_grad_(False)
    else:
        model.decoder.requires_grad_(True)
    embedding = model.decoder.get_input_embeddings()
    if config.train_decoder != "full":
        # Only the modality-token rows of the (otherwise frozen) embedding matrix learn.
        embedding.weight.requires_grad_(True)
        rows = torch.zeros(embedding.weight.shape[0], 1, dtype=embedding.weight.dtype)
        rows[model.image_token_ids] = 1
        rows[model.text_token_ids] = 1
        embedding.weight.register_hook(lambda grad, rows=rows: grad * rows.to(grad.device, grad.dtype))


def apply_lora(decoder: nn.Module, lora: dict) -> nn.Module:
    """Wrap the decoder with peft LoRA adapters (base weights frozen)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as error:
        raise ImportError("train_decoder='lora' needs peft: pip install 'radz-engine[train]'") from error
    config = LoraConfig(
        r=int(lora["r"]),
        lora_alpha=int(lora["alpha"]),
        lora_dropout=float(lora.get("dropout", 0.0)),
        target_modules=list(lora["target_modules"]),
        bias="none",
    )
    return get_peft_model(decoder, config)


def merge_lora(model) -> None:
    """Fold LoRA adapters into the base weights (for export)."""
    if hasattr(model.decoder, "merge_and_unload"):
        model.decoder = model.decoder.merge_and_unload()


def group_of(name: str) -> str:
    if name.startswith("vision_tower."):
        return "vision"
    if name.startswith("projector."):
        return "projector"
    if "embed_tokens" in name:
        return "tokens"
    return "decoder"


def parameter_groups(model: nn.Module, learning_rates: dict[str, float], weight_decay: float = 0.0) -> list[dict]:
    """AdamW groups by part; no weight decay on embeddings, norms and biases."""
    buckets: dict[tuple[str, bool], list] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        group = group_of(name)
        if group not in learning_rates:
            raise ValueError(f"learning rates: no entry for parameter group {group!r} (have {sorted(learning_rates)})")
        decay = param.ndim >= 2 and group != "tokens"
        buckets.setdefault((group, decay), []).append(param)
    return [
        {
            "name": f"{group}{'' if decay else '_no_decay'}",
            "params": params,
            "lr": float(learning_rates[group]),
            "weight_decay": weight_decay if decay else 0.0,
        }
        for (group, decay), params in sorted(buckets.items())
    ]


def count_parameters(model: nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable}
