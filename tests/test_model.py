"""Model presets, factory, checkpoint loading (llava-hf and separate folders), LoRA, pooling."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from radz_train.model import create_model, get_model_config, list_models  # noqa: E402
from radz_train.model.modeling import pool_features  # noqa: E402
from radz_train.model.tokenizer import train_bpe_tokenizer  # noqa: E402

CORPUS = [
    "the heart is enlarged with a small left pleural effusion.",
    "lungs are clear. no pneumothorax.",
    "there is a 12 mm nodule in the right upper lobe.",
    "moderate pulmonary edema with kerley b lines.",
] * 20
TINY = {
    "vision.image_size": 32,
    "vision.patch_size": 8,
    "vision.num_hidden_layers": 1,
    "decoder.num_hidden_layers": 2,
    "tokenizer.vocab_size": 400,
}


def test_presets_and_overrides():
    assert {"tiny", "small", "paper"} <= set(list_models())
    paper = get_model_config("paper")
    assert (paper.n_image_tokens, paper.n_text_tokens, paper.lora["r"], paper.lora["alpha"]) == (4, 8, 128, 256)
    assert paper.decoder["type"] == "mistral" and paper.vision["image_size"] == 336 and not paper.train_vision
    small = get_model_config("tiny", {"decoder.num_hidden_layers": 3, "feature_layer": -1})
    assert small.decoder["num_hidden_layers"] == 3 and small.feature_layer == -1
    with pytest.raises(ValueError, match="unknown key"):
        get_model_config("tiny", {"nonsense": 1})
    with pytest.raises(ValueError, match="feature_layer"):
        get_model_config("tiny", {"feature_layer": 9})
    with pytest.raises(ValueError, match="not a preset"):
        get_model_config("huge")


def test_pooling_global_is_modality_mean_and_local_the_rest():
    states = torch.arange(2 * 5 * 2, dtype=torch.float32).reshape(2, 5, 2) + 1
    valid = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    modality = torch.tensor([[0, 0, 0, 1, 1], [0, 1, 1, 0, 0]], dtype=torch.bool)
    f = pool_features(states, modality, valid)
    want_g = torch.nn.functional.normalize(torch.stack([states[0, 3:].mean(0), states[1, 1:3].mean(0)]), dim=-1)
    want_l = torch.nn.functional.normalize(torch.stack([states[0, :3].mean(0), states[1, :1].mean(0)]), dim=-1)
    torch.testing.assert_close(f.global_, want_g)
    torch.testing.assert_close(f.local, want_l)
    last = pool_features(states, torch.zeros_like(modality), valid)  # no modality tokens: last real token
    torch.testing.assert_close(
        last.global_, torch.nn.functional.normalize(torch.stack([states[0, 4], states[1, 2]]), dim=-1)
    )


def test_text_inputs_put_modality_tokens_right_after_the_text():
    model = create_model("tiny", corpus=CORPUS, overrides=TINY, seed=0)
    batch = model.tokenize(["lungs are clear.", "the heart is enlarged with a small left pleural effusion."])
    ids, mask, modality = batch["input_ids"], batch["attention_mask"], batch["modality_mask"]
    txt_ids = model.text_token_ids.tolist()
    for row in range(2):
        n = int(mask[row].sum())
        assert ids[row, n - 8 : n].tolist() == txt_ids
        assert modality[row].nonzero().flatten().tolist() == list(range(n - 8, n))
        assert (ids[row, n:] == model.tokenizer.pad_token_id).all()
    assert all(t in model.tokenizer.get_vocab() for t in ["<ImgCls_0>", "<ImgCls_3>", "<TxtCls_7>"])


def test_padding_does_not_change_text_features():
    model = create_model("tiny", corpus=CORPUS, overrides=TINY, seed=0).eval()
    with torch.no_grad():
        alone = model.encode_texts(["lungs are clear."]).global_
        padded = model.encode_texts(["lungs are clear.", CORPUS[0] + " " + CORPUS[2]]).global_[:1]
    torch.testing.assert_close(alone, padded, atol=1e-5, rtol=1e-5)


def _tiny_hf_parts(tmp_path):
    from transformers import CLIPVisionConfig, LlamaConfig, PreTrainedTokenizerFast

    tok = train_bpe_tokenizer(CORPUS, 300)
    tok.save_pretrained(tmp_path / "tok")
    tok = PreTrainedTokenizerFast.from_pretrained(str(tmp_path / "tok"))
    vision = CLIPVisionConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        projection_dim=32,
    )
    text = LlamaConfig(
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=96,
        vocab_size=len(tok),
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    return tok, vision, text


def test_loads_llava_hf_checkpoint(tmp_path):
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    tok, vision, text = _tiny_hf_parts(tmp_path)
    torch.manual_seed(1)
    llava = LlavaForConditionalGeneration(
        LlavaConfig(vision_config=vision, text_config=text, image_token_index=0, vision_feature_layer=-2)
    )
    llava.save_pretrained(tmp_path / "llava")
    tok.save_pretrained(tmp_path / "llava")
    model = create_model("tiny", checkpoint=tmp_path / "llava")
    assert model.config.decoder["hidden_size"] == 48 and model.config.vision["hidden_size"] == 32
    torch.testing.assert_close(model.projector.linear_1.weight, llava.model.multi_modal_projector.linear_1.weight)
    q = "layers.0.self_attn.q_proj.weight"
    torch.testing.assert_close(
        dict(model.decoder.named_parameters())[q], dict(llava.model.language_model.named_parameters())[q]
    )
    with torch.no_grad():
        f = model.encode_image(torch.randn(2, 3, 32, 32))
    assert f.global_.shape == (2, 48)
    torch.testing.assert_close(f.global_.norm(dim=1), torch.ones(2))


def test_loads_separate_vision_and_language_checkpoints(tmp_path):
    from transformers import CLIPVisionModel, LlamaForCausalLM

    tok, vision, text = _tiny_hf_parts(tmp_path)
    torch.manual_seed(2)
    CLIPVisionModel(vision).save_pretrained(tmp_path / "vision")
    lm = LlamaForCausalLM(text)
    lm.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    model = create_model("tiny", vision_checkpoint=tmp_path / "vision", language_checkpoint=tmp_path / "lm")
    key = "layers.1.mlp.down_proj.weight"
    torch.testing.assert_close(dict(model.decoder.named_parameters())[key], dict(lm.model.named_parameters())[key])
    assert len(model.tokenizer) == len(tok) + 12  # 4 image + 8 text modality tokens
    with pytest.raises(FileNotFoundError, match="local folders only"):
        create_model("tiny", vision_checkpoint=tmp_path / "nowhere", language_checkpoint=tmp_path / "lm")


def test_lora_trains_adapters_and_only_modality_token_rows():
    overrides = dict(
        TINY,
        train_decoder="lora",
        lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
        train_vision=False,
    )
    model = create_model("tiny", corpus=CORPUS, overrides=overrides, seed=0)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("lora_A" in n for n in trainable) and any("projector" in n for n in trainable)
    assert not any(n.startswith("vision_tower") for n in trainable)
    assert not any("q_proj.base_layer" in n for n in trainable)
    embedding = model.decoder.get_input_embeddings().weight
    before = embedding.detach().clone()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    img = model.encode_image(torch.randn(2, 3, 32, 32))
    txt = model.encode_text(**model.tokenize(["lungs are clear.", "small left pleural effusion."]))
    ((img.global_ @ txt.global_.t()).sum() + (img.local * txt.local).sum()).backward()
    optimizer.step()
    changed = (embedding.detach() != before).any(1).nonzero().flatten().tolist()
    assert set(changed) <= set(model.image_token_ids.tolist() + model.text_token_ids.tolist())
    assert changed, "modality token rows should learn"
