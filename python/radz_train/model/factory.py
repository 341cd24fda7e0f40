"""create_model: presets from scratch, or local checkpoints (never a hub download).

Sources of weights:
- nothing: every part random (the `tiny` and `small` presets train from scratch);
- `checkpoint`: a llava-hf `LlavaForConditionalGeneration` folder (vision tower, projector,
  language model and tokenizer together);
- `vision_checkpoint` + `language_checkpoint`: separate CLIP/SigLIP vision and causal-LM folders
  (the projector starts random, as in LLaVA's first stage).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from radz_train.model.config import ModelConfig
from radz_train.model.modeling import MLP2xGelu, RadzModel
from radz_train.model.registry import get_model_config


def _vision_config(spec: dict):
    from transformers import CLIPVisionConfig, SiglipVisionConfig

    kwargs = {k: v for k, v in spec.items() if k not in ("type", "feature_layer")}
    return (CLIPVisionConfig if spec["type"] == "clip" else SiglipVisionConfig)(**kwargs)


def _decoder_config(spec: dict, vocab_size: int, tokenizer):
    from transformers import LlamaConfig, MistralConfig, Qwen2Config

    kinds = {"llama": LlamaConfig, "mistral": MistralConfig, "qwen2": Qwen2Config}
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    kwargs["vocab_size"] = vocab_size
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        kwargs.setdefault(name, getattr(tokenizer, name, None))
    return kinds[spec["type"]](**kwargs)


def _vision_model(config):
    from transformers import CLIPVisionModel, SiglipVisionModel

    return (CLIPVisionModel if config.model_type.startswith("clip") else SiglipVisionModel)(config)


def _decoder_model(config):
    from transformers import AutoModel

    return AutoModel.from_config(config)


def _local_dir(path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{what}: {path} is not a folder (weights load from local folders only)")
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{what}: {path} has no config.json")
    return path


def load_llava_checkpoint(path) -> tuple[nn.Module, nn.Module, nn.Module, object, dict]:
    """(vision tower, projector, language model, tokenizer, dims) from a llava-hf folder."""
    from transformers import LlavaForConditionalGeneration

    from radz_train.model.tokenizer import load_tokenizer

    path = _local_dir(path, "checkpoint")
    llava = LlavaForConditionalGeneration.from_pretrained(str(path), local_files_only=True, dtype=torch.float32)
    inner = llava.model
    tokenizer = load_tokenizer(path)
    vision = inner.vision_tower
    dims = {
        "vision": vision.config.to_dict(),
        "decoder": inner.language_model.config.to_dict(),
        "vision_feature_layer": llava.config.vision_feature_layer,
    }
    return vision, inner.multi_modal_projector, inner.language_model, tokenizer, dims


def load_separate_checkpoints(vision_path, language_path):
    """(vision tower, language model, tokenizer) from a CLIP/SigLIP folder and a causal-LM folder."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, CLIPVisionModel, SiglipVisionModel

    from radz_train.model.tokenizer import load_tokenizer

    vision_path = _local_dir(vision_path, "vision_checkpoint")
    language_path = _local_dir(language_path, "language_checkpoint")
    vision_type = AutoConfig.from_pretrained(str(vision_path), local_files_only=True).model_type
    if vision_type in ("clip", "siglip"):  # a full CLIP/SigLIP: keep the vision half
        vision = AutoModel.from_pretrained(str(vision_path), local_files_only=True).vision_model
        vision = _wrap_vision_transformer(vision, vision_type)
    elif vision_type == "clip_vision_model":
        vision = CLIPVisionModel.from_pretrained(str(vision_path), local_files_only=True)
    elif vision_type == "siglip_vision_model":
        vision = SiglipVisionModel.from_pretrained(str(vision_path), local_files_only=True)
    else:
        raise ValueError(f"vision_checkpoint: {vision_path} is a {vision_type!r} model, need CLIP or SigLIP")
    causal = AutoModelForCausalLM.from_pretrained(str(language_path), local_files_only=True, dtype=torch.float32)
    return vision, causal.model, load_tokenizer(language_path)


def _wrap_vision_transformer(vision_transformer: nn.Module, kind: str) -> nn.Module:
    from transformers import CLIPVisionModel, SiglipVisionModel

    wrapper = (CLIPVisionModel if kind == "clip" else SiglipVisionModel)(vision_transformer.config)
    wrapper.vision_model = vision_transformer
    return wrapper


def _vision_spec_from(config, feature_layer: int) -> dict:
    keys = ("image_size", "patch_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    kind = "clip" if config.model_type.startswith("clip") else "siglip"
    return {"type": kind, **{k: getattr(config, k) for k in keys}, "feature_layer": feature_layer}


def _decoder_spec_from(config) -> dict:
    keys = (
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "intermediate_size",
        "max_position_embeddings",
        "vocab_size",
    )
    kind = config.model_type if config.model_type in ("llama", "mistral", "qwen2") else "llama"
    return {"type": kind, **{k: getattr(config, k) for k in keys if hasattr(config, k)}}


def create_model(
    name_or_config: str | ModelConfig = "tiny",
    *,
    tokenizer=None,
    corpus: Iterable[str] | None = None,
    checkpoint=None,
    vision_checkpoint=None,
    language_checkpoint=None,
    overrides: dict | None = None,
    seed: int | None = None,
) -> RadzModel:
    """Build a RadzModel.

    A preset with a BPE tokenizer needs `tokenizer` or a text `corpus` to train one on.
    """
    config = name_or_config if isinstance(name_or_config, ModelConfig) else get_model_config(name_or_config, overrides)
    if seed is not None:
        torch.manual_seed(seed)
    if checkpoint is not None:
        vision, projector, decoder, tokenizer, dims = load_llava_checkpoint(checkpoint)
        data = config.to_dict()
        data["vision"] = _vision_spec_from(vision.config, dims["vision_feature_layer"])
        data["decoder"] = _decoder_spec_from(decoder.config)
        data["tokenizer"] = {"type": "checkpoint"}
        config = ModelConfig.from_dict(data)
    elif vision_checkpoint is not None or language_checkpoint is not None:
        if vision_checkpoint is None or language_checkpoint is None:
            raise ValueError("vision_checkpoint and language_checkpoint: give both (or `checkpoint`)")
        vision, decoder, tokenizer = load_separate_checkpoints(vision_checkpoint, language_checkpoint)
        data = config.to_dict()
        data["vision"] = _vision_spec_from(vision.config, config.vision.get("feature_layer", -2))
        data["decoder"] = _decoder_spec_from(decoder.config)
        data["tokenizer"] = {"type": "checkpoint"}
        config = ModelConfig.from_dict(data)
        projector = MLP2xGelu(vision.config.hidden_size, decoder.config.hidden_size)
    else:
        if tokenizer is None:
            if corpus is None:
                raise ValueError(
                    f"model {config.name!r}: trains its own tokenizer: pass `tokenizer` or a text `corpus`"
                )
            from radz_train.model.tokenizer import train_bpe_tokenizer

            tokenizer = train_bpe_tokenizer(corpus, int(config.tokenizer.get("vocab_size", 2000)))
        vision = _vision_model(_vision_config(config.vision))
        decoder = _decoder_model(_decoder_config(config.decoder, len(tokenizer), tokenizer))
        projector = MLP2xGelu(int(config.vision["hidden_size"]), int(config.decoder["hidden_size"]))

    from radz_train.model.tokenizer import add_modality_tokens, ensure_special_tokens

    ensure_special_tokens(tokenizer)
    add_modality_tokens(tokenizer, config.n_image_tokens, config.n_text_tokens)
    _grow_embeddings(decoder, len(tokenizer))
    config.decoder["vocab_size"] = len(tokenizer)
    model = RadzModel(config, vision, projector, decoder, tokenizer)
    from radz_train.model.trainable import configure_trainable

    configure_trainable(model)
    return model


def _grow_embeddings(decoder: nn.Module, vocab_size: int) -> None:
    """Add rows for new tokens, initialised to the mean embedding (a neutral start)."""
    embedding = decoder.get_input_embeddings()
    old = embedding.weight.shape[0]
    if vocab_size <= old:
        return
    decoder.resize_token_embeddings(vocab_size, mean_resizing=False)
    with torch.no_grad():
        weight = decoder.get_input_embeddings().weight
        weight[old:] = weight[:old].mean(0, keepdim=True)
