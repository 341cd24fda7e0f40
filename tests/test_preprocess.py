"""C++ preprocessing against its numpy reference, on fresh random inputs."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import radz_engine as rz
from radz_engine import PixelSpec, _core
from radz_engine.preprocessing.reference import preprocess_reference

TOL = 1e-5
DTYPES = (np.uint8, np.uint16, np.int16, np.float32)


def random_pixels(rng: np.random.Generator, dtype, shape) -> np.ndarray:
    if dtype == np.float32:
        return (rng.standard_normal(shape) * 300 + 1000).astype(np.float32)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


@st.composite
def pixel_specs(draw, dtype) -> PixelSpec:
    kwargs = {}
    if draw(st.booleans()):
        kwargs["rescale_slope"] = draw(st.sampled_from([-1.0, 0.5, 1.0, 2.5]))
        kwargs["rescale_intercept"] = draw(st.floats(-2000, 2000))
    voi = draw(st.sampled_from(["none", "window", "lut"]))
    if voi == "window":
        function = draw(st.sampled_from(["LINEAR", "LINEAR_EXACT", "SIGMOID"]))
        kwargs["voi_function"] = function
        kwargs["window_center"] = draw(st.floats(-1000, 70000))
        low = 1.0 if function == "LINEAR" else 1e-3
        kwargs["window_width"] = draw(st.floats(low, 70000))
    elif voi == "lut":
        bits = draw(st.integers(8, 16))
        size = draw(st.integers(1, 600))
        seed = draw(st.integers(0, 2**31))
        kwargs["voi_lut"] = np.random.default_rng(seed).integers(0, 2**bits, size)
        kwargs["voi_lut_first"] = draw(st.integers(-500, 3000))
        kwargs["voi_lut_bits"] = bits
    kwargs["invert"] = draw(st.booleans())
    if dtype != np.float32 and draw(st.booleans()):
        kwargs["bits_stored"] = draw(st.integers(1, np.dtype(dtype).itemsize * 8))
    if draw(st.booleans()):
        kwargs["padding_value"] = float(draw(st.integers(-100, 300)))
        if draw(st.booleans()):
            kwargs["padding_limit"] = float(draw(st.integers(-100, 300)))
    return PixelSpec(**kwargs)


@st.composite
def cases(draw):
    dtype = draw(st.sampled_from(DTYPES))
    shape = (draw(st.integers(1, 200)), draw(st.integers(1, 200)))
    spec = draw(pixel_specs(dtype))
    out = (draw(st.integers(1, 96)), draw(st.integers(1, 96)))
    aspect = draw(st.sampled_from(["letterbox", "stretch"]))
    seed = draw(st.integers(0, 2**31))
    return dtype, shape, spec, out, aspect, seed


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_core_equals_reference_on_random_inputs(case):
    dtype, shape, spec, out_size, aspect, seed = case
    pixels = random_pixels(np.random.default_rng(seed), dtype, shape)
    got = rz.preprocess(pixels, spec, out_size, aspect=aspect)
    want = preprocess_reference(pixels, spec, out_size, aspect=aspect)
    assert got.shape == want.shape == (3, *out_size)
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)


# -- float pixels: every mapping of the affine fast path and of the exact path ------------------
# (cpp/src/intensity.cpp folds LINEAR / LINEAR_EXACT windows and min-max, inversion included, into
# y = clamp(v * a + b) with padding tested on float order keys; SIGMOID, VOI LUTs and LINEAR width
# 1 map pixel by pixel.) Windows are drawn around the data so pixels fall inside, on and outside.
FLOAT_MAPPINGS = ("LINEAR", "LINEAR_EXACT", "SIGMOID", "min-max", "voi_lut", "LINEAR width 1")
PADDINGS = ("none", "value", "range", "zero")


@st.composite
def float_cases(draw, mapping=None, padding=None):
    return {
        "mapping": mapping or draw(st.sampled_from(FLOAT_MAPPINGS)),
        "padding": padding or draw(st.sampled_from(PADDINGS)),
        "invert": draw(st.booleans()),
        "rescale": draw(st.sampled_from([None, (-1.0, 100.0), (0.5, -1024.0), (2.5, 0.0)])),
        "scale": draw(st.sampled_from([1e-3, 1.0, 300.0, 1e5])),  # spread of the pixel values
        "offset": draw(st.floats(-2000, 2000)),
        "center": draw(st.floats(-2, 2)),  # window centre, in spreads from the data's centre
        "width": draw(st.floats(0.01, 10)),  # window width, in spreads
        "shape": (draw(st.integers(1, 80)), draw(st.integers(1, 80))),
        "out": (draw(st.integers(1, 96)), draw(st.integers(1, 96))),  # shrinks and enlarges
        "aspect": draw(st.sampled_from(["letterbox", "stretch"])),
        "seed": draw(st.integers(0, 2**31)),
    }


def float_pixels_and_spec(case: dict) -> tuple[np.ndarray, PixelSpec]:
    """Fresh non-zero random float pixels and a spec that exercises the case's branch."""
    rng = np.random.default_rng(case["seed"])
    pixels = (rng.standard_normal(case["shape"]) * case["scale"] + case["offset"]).astype(np.float32)
    kwargs: dict = {"invert": case["invert"]}
    slope, intercept = case["rescale"] or (1.0, 0.0)
    if case["rescale"]:
        kwargs.update(rescale_slope=slope, rescale_intercept=intercept)
    modality_center = (case["offset"] + case["center"] * case["scale"]) * slope + intercept
    modality_width = case["width"] * case["scale"] * abs(slope)
    mapping = case["mapping"]
    if mapping in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        width = max(modality_width, 1.0) if mapping == "LINEAR" else modality_width
        kwargs.update(voi_function=mapping, window_center=modality_center, window_width=width)
    elif mapping == "LINEAR width 1":
        kwargs.update(voi_function="LINEAR", window_center=modality_center, window_width=1.0)
    elif mapping == "voi_lut":
        kwargs.update(
            voi_lut=rng.integers(0, 2**12, 50), voi_lut_bits=12, voi_lut_first=int(np.floor(modality_center)) - 25
        )
    flat = pixels.reshape(-1)
    if case["padding"] == "value":
        kwargs["padding_value"] = float(flat[rng.integers(flat.size)])
        flat[rng.random(flat.size) < 0.1] = kwargs["padding_value"]
    elif case["padding"] == "range":
        low, high = np.sort(rng.choice(flat, 2))
        kwargs.update(padding_value=float(high), padding_limit=float(low))  # the limit may be the lower one
    elif case["padding"] == "zero":  # zeros of both signs are padding
        kwargs["padding_value"] = 0.0
        flat[rng.random(flat.size) < 0.1] = np.float32(-0.0)
        flat[rng.random(flat.size) < 0.1] = np.float32(0.0)
    return pixels, PixelSpec(**kwargs)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(float_cases())
def test_float_pixels_equal_reference(case):
    pixels, spec = float_pixels_and_spec(case)
    got = rz.preprocess(pixels, spec, case["out"], aspect=case["aspect"])
    want = preprocess_reference(pixels, spec, case["out"], aspect=case["aspect"])
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("mapping", FLOAT_MAPPINGS)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_float_pixels_each_branch_equal_reference(mapping, padding, data):
    """Every mapping x padding pair, each run (the test above draws them at random)."""
    case = data.draw(float_cases(mapping, padding))
    pixels, spec = float_pixels_and_spec(case)
    for out in (case["out"], (case["shape"][0] * 2, case["shape"][1] * 2)):  # map_row and accumulate_row
        np.testing.assert_allclose(
            rz.preprocess(pixels, spec, out, aspect=case["aspect"]),
            preprocess_reference(pixels, spec, out, aspect=case["aspect"]),
            rtol=0,
            atol=TOL,
        )


@pytest.mark.parametrize(
    "padding_value, padding_limit",
    [(0.1, None), (0.1, 0.3), (0.3, 0.1), (-1e39, -1.0), (1e-46, None), (-1e-46, 1e-46), (3.0, 3.0)],
)
def test_float_padding_bounds_no_float_equals(padding_value, padding_limit):
    """Padding bounds between floats, beyond the float range, below the smallest denormal."""
    values = [0.0, -0.0, 0.1, 0.3, np.nextafter(np.float32(0.1), np.float32(0)), 1e-45, -1e-45, -3e38, 3.0, 7.0]
    pixels = np.array([values * 3], dtype=np.float32).reshape(3, len(values))
    for spec in (
        PixelSpec(padding_value=padding_value, padding_limit=padding_limit),
        PixelSpec(padding_value=padding_value, padding_limit=padding_limit, invert=True),
        PixelSpec(padding_value=padding_value, padding_limit=padding_limit, window_center=0.0, window_width=2.0),
    ):
        np.testing.assert_allclose(
            rz.preprocess(pixels, spec, (6, 20), aspect="stretch"),
            preprocess_reference(pixels, spec, (6, 20), aspect="stretch"),
            rtol=0,
            atol=TOL,
        )


@pytest.mark.parametrize(
    "shape",
    [(1, 1), (1, 777), (777, 1), (2, 3), (223, 225), (224, 224), (1000, 30)],
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_odd_sizes(shape, dtype):
    rng = np.random.default_rng(hash((shape, np.dtype(dtype).str)) % 2**32)
    pixels = random_pixels(rng, dtype, shape)
    spec = PixelSpec(invert=True) if dtype == np.uint16 else None
    for aspect in ("letterbox", "stretch"):
        np.testing.assert_allclose(
            rz.preprocess(pixels, spec, 224, aspect=aspect),
            preprocess_reference(pixels, spec, 224, aspect=aspect),
            rtol=0,
            atol=TOL,
        )


def test_large_odd_image_4097x3001():
    rng = np.random.default_rng(4097)
    pixels = rng.integers(0, 2**15, size=(4097, 3001)).astype(np.uint16)
    spec = PixelSpec(window_center=16000.0, window_width=20000.0, invert=True, bits_stored=15)
    np.testing.assert_allclose(rz.preprocess(pixels, spec, 224), preprocess_reference(pixels, spec, 224), atol=TOL)
    np.testing.assert_allclose(
        rz.preprocess(pixels, spec, (300, 97), aspect="stretch"),
        preprocess_reference(pixels, spec, (300, 97), aspect="stretch"),
        atol=TOL,
    )


def test_enlarging_small_image_is_bilinear():
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 4096, size=(7, 5)).astype(np.uint16)
    spec = PixelSpec(window_center=2048.0, window_width=4096.0)
    np.testing.assert_allclose(
        rz.preprocess(pixels, spec, 513, aspect="stretch"),
        preprocess_reference(pixels, spec, 513, aspect="stretch"),
        atol=TOL,
    )


def test_float16_output_within_one_ulp():
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 4096, size=(300, 250)).astype(np.uint16)
    got = rz.preprocess(pixels, None, 64, dtype="float16")
    want = preprocess_reference(pixels, None, 64, dtype="float16")
    assert got.dtype == np.float16
    ulp = np.spacing(np.abs(want).astype(np.float16)).astype(np.float32)
    assert np.all(np.abs(got.astype(np.float32) - want.astype(np.float32)) <= ulp)


def test_non_contiguous_inputs():
    rng = np.random.default_rng(3)
    base = rng.integers(0, 60000, size=(301, 402)).astype(np.uint16)
    for view in (base[::2], base[:, ::3], base[::-1], base[10:200, 5:300], base.T):
        np.testing.assert_allclose(rz.preprocess(view, None, 48), preprocess_reference(view, None, 48), atol=TOL)


def test_custom_channels_and_pad_value():
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 255, size=(50, 120)).astype(np.uint8)
    kwargs = dict(mean=(0.5,), std=(0.25,), pad_value=0.3)
    got = rz.preprocess(pixels, None, (40, 40), **kwargs)
    assert got.shape == (1, 40, 40)
    np.testing.assert_allclose(got, preprocess_reference(pixels, None, (40, 40), **kwargs), atol=TOL)
    assert got[0, 0, 0] == pytest.approx((0.3 - 0.5) / 0.25)


def test_out_buffer_is_filled_in_place():
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 4096, size=(90, 60)).astype(np.uint16)
    out = np.full((3, 32, 32), np.nan, dtype=np.float32)
    result = rz.preprocess(pixels, None, 32, out=out)
    assert result is out
    np.testing.assert_allclose(out, preprocess_reference(pixels, None, 32), atol=TOL)


def test_batch_equals_single_calls():
    rng = np.random.default_rng(6)
    images = [
        random_pixels(rng, dtype, shape)
        for dtype, shape in [
            (np.uint16, (500, 400)),
            (np.uint8, (1, 1)),
            (np.int16, (33, 700)),
            (np.float32, (64, 64)),
            (np.uint16, (2, 999)),
        ]
    ]
    specs = [
        PixelSpec(invert=True),
        None,
        PixelSpec(rescale_slope=2.0),
        None,
        PixelSpec(window_center=3e4, window_width=2e4),
    ]
    batch = rz.preprocess_batch(images, specs, 56, num_threads=2)
    assert batch.shape == (5, 3, 56, 56) and batch.flags.c_contiguous
    for i, (img, spec) in enumerate(zip(images, specs)):
        np.testing.assert_allclose(batch[i], preprocess_reference(img, spec, 56), atol=TOL)
    shared = rz.preprocess_batch(images, PixelSpec(invert=True), 56, dtype="float16")
    assert shared.dtype == np.float16 and shared.shape == (5, 3, 56, 56)


def test_batch_is_safe_from_many_python_threads():
    rng = np.random.default_rng(7)
    images = [
        random_pixels(rng, np.uint16, (int(rng.integers(20, 300)), int(rng.integers(20, 300)))) for _ in range(24)
    ]
    want = np.stack([preprocess_reference(img, None, 32) for img in images])
    results: dict[int, np.ndarray] = {}

    def work(k: int) -> None:
        order = np.random.default_rng(k).permutation(len(images))
        got = rz.preprocess_batch([images[i] for i in order], None, 32)
        results[k] = got[np.argsort(order)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6
    for got in results.values():
        np.testing.assert_allclose(got, want, atol=TOL)


# --- the intensity table: sized by BitsStored, cached per pixel spec, or computed directly ------


def _window_specs(n: int) -> list[PixelSpec]:
    functions = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
    return [
        PixelSpec(
            window_center=500.0 + 37.0 * i,
            window_width=300.0 + 11.0 * i,
            voi_function=functions[i % 3],
            bits_stored=10 + i % 7,
            invert=i % 2 == 1,
            padding_value=3.0 if i % 5 == 0 else None,
        )
        for i in range(n)
    ]


def test_cached_table_equals_fresh_and_reference():
    """The first call builds a table (or computes directly), later calls reuse the cached one:
    same output bit for bit, and the numpy reference's, for images above and below the table size."""
    rng = np.random.default_rng(21)
    for spec in _window_specs(9):
        for shape in ((300, 260), (16, 16), (3, 700)):
            pixels = random_pixels(rng, np.uint16, shape)
            first = rz.preprocess(pixels, spec, 40)
            again = rz.preprocess(pixels, spec, 40)
            np.testing.assert_array_equal(first, again)
            np.testing.assert_allclose(first, preprocess_reference(pixels, spec, 40), atol=TOL)


def test_many_threads_many_specs_equal_reference():
    """More specs than the cache holds (32), from many threads at once: tables are evicted while
    other threads still use them; every output equals the reference."""
    rng = np.random.default_rng(22)
    specs = _window_specs(70)
    images = [random_pixels(rng, np.uint16, (int(rng.integers(60, 280)), int(rng.integers(60, 280)))) for _ in specs]
    want = [preprocess_reference(img, spec, 24) for img, spec in zip(images, specs)]
    failures: list[int] = []

    def work(k: int) -> None:
        for i in np.random.default_rng(k).permutation(len(specs)):
            if not np.allclose(rz.preprocess(images[i], specs[i], 24), want[i], rtol=0, atol=TOL):
                failures.append(int(i))
        got = rz.preprocess_batch(images, specs, 24, num_threads=3)
        failures.extend(i for i in range(len(specs)) if not np.allclose(got[i], want[i], rtol=0, atol=TOL))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


@pytest.mark.parametrize("dtype", [np.uint16, np.int16])
@pytest.mark.parametrize("bits", [8, 12, 15])
def test_bits_stored_overlay_bits_ignored(dtype, bits):
    """Bits above BitsStored (overlays, garbage) never change the output, for tables and direct."""
    rng = np.random.default_rng(bits)
    for shape in ((200, 200), (5, 9)):
        pixels = random_pixels(rng, dtype, shape)
        garbage = (pixels.view(np.uint16) | np.uint16(0xFFFF << bits & 0xFFFF)).view(dtype)
        for spec in (PixelSpec(bits_stored=bits), PixelSpec(bits_stored=bits, window_center=40.0, window_width=300.0)):
            got = rz.preprocess(garbage, spec, 32)
            np.testing.assert_array_equal(got, rz.preprocess(pixels, spec, 32))
            np.testing.assert_allclose(got, preprocess_reference(pixels, spec, 32), atol=TOL)


# --- bad input: a ValueError naming the argument, never a crash ---------------------------------


@pytest.mark.parametrize(
    "pixels, match",
    [
        (np.zeros((4, 4), dtype=np.int32), "pixels: dtype int32"),
        (np.zeros((4, 4), dtype=np.float64), "pixels: dtype float64"),
        (np.zeros((4, 4, 3), dtype=np.uint8), "pixels: must be 2-D"),
        (np.zeros((0, 4), dtype=np.uint8), "pixels: empty"),
        (np.zeros((4, 0), dtype=np.uint16), "pixels: empty"),
        ([[1, 2], [3, 4]], "pixels: need a numpy array"),
        (np.array([[1.0, np.nan]], dtype=np.float32), "pixels: contains NaN"),
        (np.array([[1.0, np.inf]], dtype=np.float32), "pixels: contains NaN"),
        (np.zeros((4, 4), dtype=">u2"), "pixels: dtype >u2"),
    ],
)
def test_bad_pixels(pixels, match):
    with pytest.raises(ValueError, match=match):
        rz.preprocess(pixels)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(out_size=0), "out_size height"),
        (dict(out_size=(224, -1)), "out_size width"),
        (dict(out_size=(1, 2, 3)), "out_size"),
        (dict(aspect="crop"), "aspect"),
        (dict(dtype="int8"), "dtype"),
        (dict(mean=(0.5, 0.5), std=(0.2,)), "std"),
        (dict(std=(0.0, 1.0, 1.0)), "std"),
        (dict(mean=(np.nan, 0, 0)), "mean"),
        (dict(pad_value=np.nan), "pad_value"),
    ],
)
def test_bad_arguments(kwargs, match):
    pixels = np.ones((8, 8), dtype=np.uint16)
    with pytest.raises(ValueError, match=match):
        rz.preprocess(pixels, **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(rescale_slope=float("nan")), "rescale_slope"),
        (dict(rescale_intercept=float("inf")), "rescale_intercept"),
        (dict(window_center=float("nan"), window_width=10.0), "window_center"),
        (dict(window_center=1.0, window_width=0.5), "window_width"),
        (dict(window_center=1.0), "window_center/window_width"),
        (dict(voi_function="GAMMA"), "voi_function"),
        (dict(voi_lut=np.array([1.0, np.nan])), "voi_lut"),
        (dict(bits_stored=40), "bits_stored"),
        (dict(padding_limit=3.0), "padding_limit"),
    ],
)
def test_bad_spec_python_side(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PixelSpec(**kwargs)


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("rescale_slope", float("nan"), "spec.rescale_slope"),
        ("rescale_slope", 0.0, "spec.rescale_slope"),
        ("window_width", float("nan"), "spec.window"),
        ("bits_stored", -1, "spec.bits_stored"),
        ("padding_value", float("inf"), "spec.padding_value"),
    ],
)
def test_bad_spec_core_side(field, value, match):
    """The C++ core validates on its own: it never trusts the Python wrapper."""
    spec = _core.PixelSpec()
    spec.window_center, spec.window_width = 10.0, 20.0
    setattr(spec, field, value)
    output = _core.OutputSpec()
    out = np.empty((3, 224, 224), dtype=np.float32)
    with pytest.raises(ValueError, match=match):
        _core.preprocess(np.ones((4, 4), dtype=np.uint16), spec, output, out)


def test_core_rejects_wrong_out_buffer():
    output = _core.OutputSpec()
    pixels = np.ones((4, 4), dtype=np.uint16)
    for bad in (
        np.empty((3, 224, 223), np.float32),
        np.empty((3, 224, 224), np.float64),
        np.empty((3, 224, 448), np.float32)[:, :, ::2],
    ):
        with pytest.raises(ValueError, match="out"):
            _core.preprocess(pixels, _core.PixelSpec(), output, bad)


def test_batch_errors_name_the_index():
    good = np.ones((5, 5), dtype=np.uint16)
    with pytest.raises(ValueError, match=r"images\[2\]: dtype int64"):
        rz.preprocess_batch([good, good, np.ones((5, 5), dtype=np.int64)])
    with pytest.raises(ValueError, match=r"images\[1\]: contains NaN"):
        rz.preprocess_batch([good.astype(np.float32), np.full((3, 3), np.nan, np.float32)])
    with pytest.raises(ValueError, match="specs: need one per image"):
        rz.preprocess_batch([good, good], [None])
    with pytest.raises(ValueError, match="num_threads"):
        rz.preprocess_batch([good], num_threads=-1)
    assert rz.preprocess_batch([], None, 16).shape == (0, 3, 16, 16)
