"""radz_bench.flops: the analytic FLOPs per image against torch.utils.flop_counter.

FlopCounterMode counts matrix products (mm, addmm, bmm, convolution, SDPA kernels), 2 FLOPs per
multiply-add: the same set the analytic count covers, so on the tiny preset the two agree
exactly when attention runs through the math SDPA backend. With the default backend on CPU,
attention runs `_scaled_dot_product_flash_attention_for_cpu`, which the counter has no formula
for: it then misses exactly the attention-score matmuls (QK^T and AV), as the last test shows.
"""

from __future__ import annotations

import pytest

from radz_bench.flops import image_flops, prompt_length, vision_flops

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny_preset_model():
    from export_fixtures import corpus
    from radz_train.model.factory import create_model

    torch.set_num_threads(1)
    return create_model("tiny", corpus=corpus(), seed=0).eval()


def _counted(fn, x, math_sdpa: bool = True) -> float:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode():
        if math_sdpa:
            with sdpa_kernel(SDPBackend.MATH), counter:
                fn(x)
        else:
            with counter:
                fn(x)
    return counter.get_total_flops() / x.shape[0]


def test_executed_count_matches_flop_counter_on_eager_model(tiny_preset_model):
    model = tiny_preset_model
    expected = image_flops(model.config.to_dict(), prompt_length(model=model))
    counted = _counted(model.encode_image, torch.randn(2, 3, 128, 128))
    assert counted == pytest.approx(expected["executed"], rel=0.01)


def test_needed_count_matches_flop_counter_on_exported_image_encoder(tiny_preset_model):
    """The `needed` path is what radz_export's ImageEncoder runs (decoder truncated at feature_layer)."""
    from radz_export.encoders import ImageEncoder

    model = tiny_preset_model
    expected = image_flops(model.config.to_dict(), prompt_length(model=model))
    counted = _counted(ImageEncoder(model).eval(), torch.randn(2, 3, 128, 128))
    assert counted == pytest.approx(expected["needed"], rel=0.01)
    assert expected["needed"] < expected["executed"]  # tiny: the last decoder layer is dead weight


def test_flop_counter_misses_cpu_flash_attention_scores(tiny_preset_model):
    """The explained difference: without the math backend the counter skips the CPU flash
    SDPA kernel, i.e. exactly the QK^T and AV products of every layer."""
    model = tiny_preset_model
    config = model.config.to_dict()
    flops = image_flops(config, prompt_length(model=model))
    counted = _counted(model.encode_image, torch.randn(2, 3, 128, 128), math_sdpa=False)
    v, d = config["vision"], config["decoder"]
    scores = (
        v["num_hidden_layers"] * 4 * flops["vision_tokens"] ** 2 * v["hidden_size"]
        + d["num_hidden_layers"] * 4 * flops["decoder_tokens"] ** 2 * d["hidden_size"]
    )
    if counted == pytest.approx(flops["executed"], rel=0.001):
        pytest.skip("this torch's FlopCounterMode counts the CPU flash-attention kernel")
    assert counted == pytest.approx(flops["executed"] - scores, rel=0.01)


def test_vision_layer_by_hand():
    # 4 patches + CLS = 5 tokens, width 8, MLP 16: QKV/O 2*5*8*32, scores 4*25*8, MLP 2*2*5*8*16
    v = vision_flops(
        {
            "type": "clip",
            "image_size": 4,
            "patch_size": 2,
            "hidden_size": 8,
            "num_attention_heads": 2,
            "intermediate_size": 16,
            "num_hidden_layers": 1,
        }
    )
    assert v["tokens"] == 5 and v["patches"] == 4
    assert v["layer"] == 2 * 5 * 8 * 32 + 4 * 25 * 8 + 2 * 2 * 5 * 8 * 16
    assert v["patch_embed"] == 2 * 4 * 3 * 2 * 2 * 8


def test_presets_needed_vs_executed():
    from radz_train.model.registry import get_model_config

    small = image_flops(get_model_config("small").to_dict(), 12)
    paper = image_flops(get_model_config("paper").to_dict(), 12)
    assert small["vision_layers_needed"] == 11 and small["decoder_layers_needed"] == 15
    assert 80e9 < small["needed"] < small["executed"] < 110e9
    assert 8e12 < paper["needed"] < paper["executed"] < 9.5e12
    assert paper["parts"]["decoder_layers"] > 0.9 * paper["needed"]  # the 7B decoder dominates
