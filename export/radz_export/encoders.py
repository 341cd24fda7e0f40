"""Export-friendly encoder modules: the image and text paths of a RadzModel as plain forwards.

Why not call RadzModel.encode_image / encode_text directly:
- transformers' mask builders (masking_utils) use vmap / data-dependent ops that exporters reject,
  so the decoder layers are driven here with an explicit 4-D additive causal (+ padding, + sliding
  window where the config has one) mask;
- pool_features branches on data (`modality_mask.any()`); here the branch is decided once from
  the config (modality tokens or last-token features);
- only the layers up to `config.feature_layer` are run, so the exported graph holds a decoder
  truncated to those layers (LLaVA-RadZ reads the penultimate layer: the last one is dead weight).

The modules share parameters with the model they wrap (no copy). LoRA must be merged first
(`radz_train.model.trainable.merge_lora`): the layer loop expects plain decoder layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def resolved_feature_layer(config) -> int:
    """feature_layer as an index into hidden_states (0 = embeddings, L = final normed output)."""
    n_layers = int(config.decoder["num_hidden_layers"])
    index = config.feature_layer
    return index if index > 0 else n_layers + 1 + index


def _plain_decoder(decoder: nn.Module) -> nn.Module:
    if hasattr(decoder, "merge_and_unload") or hasattr(decoder, "peft_config"):
        raise ValueError(
            "decoder still has LoRA adapters: call radz_train.model.trainable.merge_lora(model) before export"
        )
    for name in ("embed_tokens", "layers", "norm", "rotary_emb"):
        if not hasattr(decoder, name):
            raise ValueError(
                f"decoder {type(decoder).__name__}: no attribute {name!r} (need a Llama/Mistral/Qwen2 base model)"
            )
    return decoder


class TruncatedDecoder(nn.Module):
    """Decoder layers 1..k of a Llama/Mistral/Qwen2 base model with an explicit attention mask.

    Returns hidden_states[k] exactly as the full model's `output_hidden_states` would (the final
    RMSNorm is applied only when k is the last layer).
    """

    def __init__(self, decoder: nn.Module, n_layers: int) -> None:
        super().__init__()
        decoder = _plain_decoder(decoder)
        total = len(decoder.layers)
        if not 1 <= n_layers <= total:
            raise ValueError(f"n_layers: must be in 1..{total}, got {n_layers}")
        self.embed_tokens = decoder.embed_tokens
        self.rotary_emb = decoder.rotary_emb
        self.layers = nn.ModuleList(list(decoder.layers)[:n_layers])
        self.norm = decoder.norm if n_layers == total else None
        config = decoder.config
        layer_types = getattr(config, "layer_types", None)
        window = getattr(config, "sliding_window", None)
        if getattr(config, "use_sliding_window", True) is False:
            window = None  # Qwen2: the window is only active when switched on
        # Per layer: the sliding window in tokens, or None for full causal attention.
        self.windows = [
            (window if (layer_types is None or layer_types[i] == "sliding_attention") else None)
            for i in range(n_layers)
        ]

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, length = inputs_embeds.shape[:2]
        device = inputs_embeds.device
        positions = torch.arange(length, device=device)
        position_ids = positions[None].expand(batch, -1)
        position_embeddings = self.rotary_emb(inputs_embeds, position_ids=position_ids)
        masks: dict = {}
        hidden = inputs_embeds
        for layer, window in zip(self.layers, self.windows):
            if window not in masks:
                masks[window] = additive_mask(positions, attention_mask, window, inputs_embeds.dtype, batch)
            hidden = layer(
                hidden, attention_mask=masks[window], position_ids=position_ids, position_embeddings=position_embeddings
            )
            if isinstance(hidden, tuple):  # older transformers return (hidden, ...)
                hidden = hidden[0]
        return self.norm(hidden) if self.norm is not None else hidden


def additive_mask(
    positions: torch.Tensor, attention_mask: torch.Tensor | None, window: int | None, dtype: torch.dtype, batch: int
) -> torch.Tensor:
    """[B, 1, L, L] additive mask: 0 where query i may see key j (j <= i, inside the window, key
    not padding), the dtype's most negative value elsewhere (not -inf: no NaN on empty rows)."""
    query = positions[:, None]
    key = positions[None, :]
    allowed = key <= query
    if window is not None:
        allowed = allowed & (query - key < window)
    allowed = allowed[None, None]
    if attention_mask is not None:
        allowed = allowed & attention_mask[:, None, None, :].bool()
    else:
        allowed = allowed.expand(batch, 1, -1, -1)
    zeros = torch.zeros(allowed.shape, dtype=dtype, device=positions.device)
    return zeros.masked_fill(~allowed, torch.finfo(dtype).min)


class ImageEncoder(nn.Module):
    """pixel_values [B, 3, H, W] float32 -> image global embedding [B, D] (L2-normalised)."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model_config = model.config
        self.vision_tower = model.vision_tower
        self.projector = model.projector
        self.decoder = TruncatedDecoder(model.decoder, resolved_feature_layer(model.config))
        self.vision_layer = model.config.vision.get("feature_layer", -2)
        self.drop_cls = model.config.vision["type"] == "clip"
        self.n_tokens = int(model.config.n_image_tokens)
        embed = model.decoder.get_input_embeddings()
        with torch.no_grad():  # constant rows: the prompt and modality tokens never change
            self.register_buffer("prompt_embeds", embed(model.image_prompt_ids).detach().clone(), persistent=False)
            self.register_buffer("token_embeds", embed(model.image_token_ids).detach().clone(), persistent=False)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.vision_tower(pixel_values=pixel_values, output_hidden_states=True)
        patches = out.hidden_states[self.vision_layer]
        if self.drop_cls:
            patches = patches[:, 1:]
        patches = self.projector(patches)
        batch = patches.shape[0]
        prompt = self.prompt_embeds[None].expand(batch, -1, -1).to(patches.dtype)
        tokens = self.token_embeds[None].expand(batch, -1, -1).to(patches.dtype)
        states = self.decoder(torch.cat([prompt, patches, tokens], dim=1))
        if self.n_tokens:
            pooled = states[:, -self.n_tokens :].mean(1)
        else:  # last-token features (the no-modality-token ablation)
            pooled = states[:, -1]
        return F.normalize(pooled.float(), dim=-1)


class TextEncoder(nn.Module):
    """input_ids [B, L] int64 + attention_mask [B, L] int64 (right-padded, as RadzModel.tokenize
    makes them) -> text global embedding [B, D] (L2-normalised).

    The modality mask is derived in the graph: modality tokens are special tokens that ordinary
    text never produces, so "position holds a <TxtCls_j> id and is not padding" is exactly the
    mask RadzModel.tokenize builds. The runtime therefore feeds only ids and attention mask.
    """

    def __init__(self, model) -> None:
        super().__init__()
        self.embed_tokens = model.decoder.get_input_embeddings()
        self.decoder = TruncatedDecoder(model.decoder, resolved_feature_layer(model.config))
        self.register_buffer("modality_ids", model.text_token_ids.detach().clone(), persistent=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.decoder(self.embed_tokens(input_ids), attention_mask)
        valid = attention_mask.to(states.dtype)
        if self.modality_ids.numel():
            hits = (input_ids[..., None] == self.modality_ids[None, None, :]).any(-1)
            weights = hits.to(states.dtype) * valid
        else:  # last real token of each right-padded row
            last = attention_mask.sum(1, keepdim=True) - 1
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None]
            weights = (positions == last).to(states.dtype)
        pooled = (states * weights[..., None]).sum(1) / weights.sum(1, keepdim=True).clamp_min(1)
        return F.normalize(pooled.float(), dim=-1)
