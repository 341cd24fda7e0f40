"""DKAM knowledge: the shipped file, anchors, and generation by a local checkpoint."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from radz_train.dkam import descriptions_for, display_name, generate_descriptions, load_knowledge  # noqa: E402
from radz_train.training.config import DEFAULT_CLASSES  # noqa: E402


def test_shipped_knowledge_covers_every_default_class():
    knowledge = load_knowledge()
    assert set(DEFAULT_CLASSES) <= set(knowledge)
    for name in DEFAULT_CLASSES:
        assert len(knowledge[name].split()) >= 25, name  # a real description, not a label
    assert display_name("pleural_effusion") == "pleural effusion"
    with pytest.raises(KeyError, match="pneumomediastinum"):
        descriptions_for(["pneumomediastinum"], knowledge)


def test_bad_knowledge_files_are_clear_errors(tmp_path):
    (tmp_path / "a.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_knowledge(tmp_path / "a.json")
    (tmp_path / "b.json").write_text(json.dumps({"findings": {"x": ""}}))
    with pytest.raises(ValueError, match="non-empty description"):
        load_knowledge(tmp_path / "b.json")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_knowledge(tmp_path / "none.json")


def test_generate_descriptions_with_a_local_checkpoint_and_cache(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from radz_train.model.tokenizer import train_bpe_tokenizer

    tok = train_bpe_tokenizer(["the heart is enlarged.", "no pleural effusion.", "a chest x-ray shows"] * 30, 300)
    config = LlamaConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=64,
        vocab_size=len(tok),
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "llm")
    tok.save_pretrained(tmp_path / "llm")
    cache = tmp_path / "knowledge.json"
    first = generate_descriptions(tmp_path / "llm", ["cardiomegaly", "pleural effusion"], cache, max_new_tokens=8)
    assert set(first) == {"cardiomegaly", "pleural_effusion"} and all(first.values())
    assert load_knowledge(cache) == first
    # cached classes are not regenerated: a missing checkpoint is only an error for new classes
    assert generate_descriptions(tmp_path / "llm", ["cardiomegaly"], cache) == {"cardiomegaly": first["cardiomegaly"]}
    with pytest.raises(FileNotFoundError, match="config.json"):
        generate_descriptions(tmp_path / "missing", ["edema"], cache)
