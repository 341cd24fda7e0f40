"""Tiny models for the export and bundle tests (built in seconds on one CPU thread)."""

from __future__ import annotations

TINY = {
    "vision.image_size": 32,
    "vision.patch_size": 8,
    "vision.num_hidden_layers": 1,
    "vision.hidden_size": 64,
    "vision.num_attention_heads": 2,
    "vision.intermediate_size": 128,
    "decoder.num_hidden_layers": 2,
    "decoder.hidden_size": 64,
    "decoder.num_attention_heads": 2,
    "decoder.num_key_value_heads": 2,
    "decoder.intermediate_size": 128,
    "max_text_length": 64,
    "tokenizer.vocab_size": 500,
}

# Paper architecture family (Mistral decoder, GQA, LoRA on every linear layer), tiny random weights.
TINY_MISTRAL_LORA = {
    **TINY,
    "decoder.type": "mistral",
    "decoder.num_attention_heads": 4,
    "decoder.num_key_value_heads": 2,
    "train_decoder": "lora",
    "train_vision": False,
    "lora": {
        "r": 4,
        "alpha": 8,
        "dropout": 0.0,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    },
}


def corpus() -> list[str]:
    from radz_train.data.phantom import generate_cases
    from radz_train.dkam import load_knowledge

    reports = [case.report for case in generate_cases(24, seed=3, size=32)]
    return reports + list(load_knowledge().values())


def tiny_model(overrides: dict | None = None, seed: int = 0):
    import torch

    from radz_train.model.factory import create_model

    torch.set_num_threads(1)
    return create_model("tiny", corpus=corpus(), overrides=overrides or TINY, seed=seed).eval()
