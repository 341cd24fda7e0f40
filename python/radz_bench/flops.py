"""FLOPs per image of the image path, counted analytically from the model config.

Counted: every matrix product (patch-embedding convolution, linear layers, the two attention
matmuls QK^T and AV over the full T x T square, as eager / SDPA kernels compute it before the
causal mask), 2 FLOPs per multiply-add. Not counted: normalisation, softmax, activations, RoPE,
residual adds (a fraction of a percent at these widths); torch.utils.flop_counter counts the
same set, so the two agree (tests/test_bench_flops.py).

Two totals:
- `needed`: the layers the features depend on: the vision tower up to its feature_layer, the
  decoder up to the model's feature_layer (what the exported ONNX graph runs: radz_export's
  TruncatedDecoder). This is the work the roofline ("compute floor") is measured against.
- `executed`: what plain PyTorch eager `RadzModel.encode_image` runs: every vision and decoder
  layer (transformers computes the whole stack and hands back hidden_states).
"""

from __future__ import annotations

__all__ = ["image_flops", "prompt_length"]


def _layers_needed(feature_layer: int, n_layers: int) -> int:
    """hidden_states[k] depends on the first k layers (index 0 = embeddings, -1 = last)."""
    index = int(feature_layer)
    return index if index > 0 else n_layers + 1 + index


def _attention_block(tokens: int, hidden: int, heads: int, kv_heads: int) -> dict:
    head_dim = hidden // heads
    kv = kv_heads * head_dim
    return {
        "qkv_o": 2 * tokens * hidden * (hidden + 2 * kv + hidden),
        "scores": 2 * 2 * tokens * tokens * head_dim * heads,
    }


def vision_flops(vision: dict) -> dict:
    """Per image, per part: patch embedding, one layer, and the token count."""
    size, patch, hidden = int(vision["image_size"]), int(vision["patch_size"]), int(vision["hidden_size"])
    heads, inter = int(vision["num_attention_heads"]), int(vision["intermediate_size"])
    patches = (size // patch) ** 2
    tokens = patches + (1 if vision["type"] == "clip" else 0)  # CLIP prepends a CLS token
    attn = _attention_block(tokens, hidden, heads, heads)
    layer = attn["qkv_o"] + attn["scores"] + 2 * 2 * tokens * hidden * inter  # fc1 + fc2
    head = 0
    if vision["type"] == "siglip":  # SiglipVisionModel's attention-pooling head (one probe query)
        head = (
            2 * tokens * hidden * 2 * hidden
            + 2 * hidden * 2 * hidden
            + 2 * 2 * tokens * hidden
            + 2 * 2 * hidden * inter
        )
    return {
        "patch_embed": 2 * patches * 3 * patch * patch * hidden,
        "layer": layer,
        "tokens": tokens,
        "patches": patches,
        "head": head,
    }


def decoder_layer_flops(decoder: dict, tokens: int) -> int:
    hidden, inter = int(decoder["hidden_size"]), int(decoder["intermediate_size"])
    heads = int(decoder["num_attention_heads"])
    kv_heads = int(decoder.get("num_key_value_heads") or heads)
    attn = _attention_block(tokens, hidden, heads, kv_heads)
    return attn["qkv_o"] + attn["scores"] + 3 * 2 * tokens * hidden * inter  # gate, up, down (SwiGLU)


def image_flops(config: dict, prompt_tokens: int) -> dict:
    """FLOPs per image of the image path.

    Args:
        config: a model config dict (ModelConfig.to_dict(), or a bundle manifest's model.config).
        prompt_tokens: length of the image prompt in tokens, BOS included (see prompt_length).

    Returns: {"needed", "executed"} totals and a "parts" breakdown of the needed path (FLOPs).
    """
    vision, decoder = config["vision"], config["decoder"]
    v = vision_flops(vision)
    v_layers = int(vision["num_hidden_layers"])
    v_needed = _layers_needed(vision.get("feature_layer", -2), v_layers)
    d_layers = int(decoder["num_hidden_layers"])
    d_needed = _layers_needed(config.get("feature_layer", -2), d_layers)
    hv, hd = int(vision["hidden_size"]), int(decoder["hidden_size"])
    projector = 2 * v["patches"] * hv * hd + 2 * v["patches"] * hd * hd
    d_tokens = int(prompt_tokens) + v["patches"] + int(config.get("n_image_tokens", 0))
    d_layer = decoder_layer_flops(decoder, d_tokens)
    parts = {
        "vision_patch_embed": v["patch_embed"],
        "vision_layers": v_needed * v["layer"],
        "projector": projector,
        "decoder_layers": d_needed * d_layer,
    }
    needed = sum(parts.values())
    executed = v["patch_embed"] + v_layers * v["layer"] + v["head"] + projector + d_layers * d_layer
    return {
        "needed": needed,
        "executed": executed,
        "parts": parts,
        "vision_tokens": v["tokens"],
        "decoder_tokens": d_tokens,
        "vision_layers_needed": v_needed,
        "decoder_layers_needed": d_needed,
    }


def prompt_length(bundle=None, model=None, config: dict | None = None) -> int:
    """Image-prompt length in tokens (BOS included): from a RadzModel, else from a bundle's
    tokenizer.json (the `tokenizers` package; no torch), else 12 (a typical length)."""
    if model is not None:
        return int(model.image_prompt_ids.numel())
    if bundle is not None:
        try:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(bundle.file("tokenizer")))
            prompt = (
                (config or bundle.manifest["model"]["config"])
                .get("prompts", {})
                .get("image", "What disease is indicated by the chest X-ray?")
            )
            ids = tok.encode(prompt, add_special_tokens=False).ids
            bos = bundle.manifest.get("text", {}).get("bos_id")
            return len(ids) + (1 if bos is not None else 0)
        except (ImportError, OSError, KeyError, ValueError):
            pass
    return 12
