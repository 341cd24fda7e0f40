"""Acquisition-shift augmentation (radz_train.data.augment): deterministic, label-preserving, valid
for the runtime's C++ preprocessing, and each shift does what it says."""

from __future__ import annotations

import numpy as np
import pytest

from radz_engine import PixelSpec, preprocess_batch
from radz_engine.preprocessing.pixel_spec import spec_for_8bit
from radz_engine.preprocessing.reference import stored_to_intensity
from radz_train.data.augment import BASE_SPEC, SHIFTS, augment, check_probabilities, compact, decode
from radz_train.data.phantom import generate_case, to_stored
from radz_train.training.data import PHANTOM_SPEC

NAMES = [s.name for s in SHIFTS]
STORAGE_ONLY = {"monochrome1", "bits_stored"}  # change the stored values, not what the runtime shows
SIZE = 128


def only(name: str) -> dict[str, float]:
    return {s.name: 1.0 if s.name == name else 0.0 for s in SHIFTS}


def shown(stored: np.ndarray, spec: PixelSpec, size: int = 64) -> np.ndarray:
    """What the runtime makes of it: C++ preprocessing, intensities [size, size] (letterboxed)."""
    return preprocess_batch([stored], [spec], size, mean=(0.0,), std=(1.0,))[0, 0]


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return generate_case(10, seed=0, site="site_a", size=SIZE).image.astype(np.float32)


def stored_forms(img: np.ndarray) -> dict[str, tuple[np.ndarray, PixelSpec]]:
    """The three ways training images arrive: .npy phantom intensities, 8-bit PNG, 15-bit MONOCHROME1 DICOM."""
    dcm, center, width = to_stored(img, bits=15, monochrome="MONOCHROME1")
    return {
        "npy": (img, PHANTOM_SPEC),
        "png": (np.rint(img * 255).astype(np.uint8), spec_for_8bit()),
        "dicom": (dcm, PixelSpec(window_center=center, window_width=width, invert=True, bits_stored=15)),
    }


def assert_valid(stored: np.ndarray, spec: PixelSpec) -> None:
    assert stored.dtype == np.uint16 and stored.ndim == 2 and min(stored.shape) >= 8
    assert 12 <= spec.bits_stored <= 16 and int(stored.max()) <= 2**spec.bits_stored - 1
    PixelSpec(**{k: getattr(spec, k) for k in spec.__dataclass_fields__})  # the C++ core validates it
    out = shown(stored, spec)
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("form", ["npy", "png", "dicom"])
def test_each_shift_is_deterministic_and_valid_for_the_runtime(image, name, form):
    stored, spec = stored_forms(image)[form]
    a = augment(stored, spec, np.random.default_rng(7), only(name))
    b = augment(stored, spec, np.random.default_rng(7), only(name))
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    assert_valid(*a)
    if name != "monochrome1":  # the only shift without random parameters
        others = [augment(stored, spec, np.random.default_rng(seed), only(name)) for seed in range(8, 12)]
        assert any(o[0].shape != a[0].shape or not np.array_equal(o[0], a[0]) or o[1] != a[1] for o in others)


@pytest.mark.parametrize("name", NAMES)
def test_each_shift_changes_the_image(image, name):
    before = shown(image, PHANTOM_SPEC, SIZE)
    changed = []
    for seed in range(4):
        stored, spec = augment(image, PHANTOM_SPEC, np.random.default_rng(seed), only(name))
        after = shown(stored, spec, SIZE)
        if name in STORAGE_ONLY:  # other stored values, same picture once the runtime decodes them
            reencoded = np.rint(image * 65535)
            assert stored.shape == image.shape and not np.array_equal(stored, reencoded)
            np.testing.assert_allclose(after, before, atol=2e-3)
        else:
            changed.append(float(np.abs(after - before).mean()))
    if name not in STORAGE_ONLY:
        assert min(changed) > 5e-4, changed


def finding_maps(shift_probabilities, seeds) -> list[tuple[np.ndarray, np.ndarray]]:
    """(difference the findings make before, after) the same augmentation, for a right-sided nodule
    (case 10) and a left pneumothorax with atelectasis (case 7): same patient rendered without findings."""
    pairs = []
    for index in (10, 7):
        with_f = generate_case(index, seed=0, site="site_a", size=SIZE).image.astype(np.float32)
        without = generate_case(index, seed=0, site="site_a", size=SIZE, findings=[]).image.astype(np.float32)
        base = shown(with_f, PHANTOM_SPEC) - shown(without, PHANTOM_SPEC)
        for seed in seeds:
            a = augment(with_f, PHANTOM_SPEC, np.random.default_rng(seed), shift_probabilities)
            b = augment(without, PHANTOM_SPEC, np.random.default_rng(seed), shift_probabilities)
            pairs.append((base, shown(*a) - shown(*b)))
    return pairs


@pytest.mark.parametrize("name", [n for n in NAMES if n not in STORAGE_ONLY])
def test_each_shift_keeps_the_findings(name):
    """A labelled case stays labelled the same: the difference its findings make survives the
    shift, in the same place (letterbox moves it: there only its strength is checked)."""
    for base, after in finding_maps(only(name), seeds=range(3)):
        assert np.linalg.norm(after) > 0.5 * np.linalg.norm(base)
        if name not in ("letterbox", "field_of_view"):  # these two move it
            assert np.corrcoef(base.ravel(), after.ravel())[0, 1] > 0.85


def test_field_of_view_keeps_findings_on_their_side():
    for k, (_base, after) in enumerate(finding_maps(only("field_of_view"), seeds=range(5))):
        half = after.shape[1] // 2
        left, right = np.abs(after[:, :half]).sum(), np.abs(after[:, half:]).sum()
        assert (left > right) if k < 5 else (right > left)


def test_opt_in_shifts_leave_the_default_stream_unchanged(image):
    """A shift with p 0 in the table draws nothing unless enabled: the default augmentation of a
    seed is what it was before such shifts were added (one uniform per default shift, then parameters)."""
    defaults = [s for s in SHIFTS if s.p > 0]
    assert len(defaults) == 13 and all(s.p == 0 for s in SHIFTS if s not in defaults)
    rng = np.random.default_rng(3)
    off = {s.name: 0.0 for s in SHIFTS}
    assert augment(image, PHANTOM_SPEC, rng, off)[0] is image
    reference = np.random.default_rng(3)
    reference.random(len(defaults))
    assert rng.random() == reference.random()
    a = augment(image, PHANTOM_SPEC, np.random.default_rng(5))
    b = augment(image, PHANTOM_SPEC, np.random.default_rng(5), {"field_of_view": 0.0})
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]


def test_the_full_table_keeps_findings_on_their_side():
    """Default probabilities: findings keep most of their contrast and stay on their side of the
    image (no flips): case 10's nodule is on the patient's right = image left, case 7's on the right."""
    pairs = finding_maps(None, seeds=range(10))
    for k, (base, after) in enumerate(pairs):
        assert np.linalg.norm(after) > 0.35 * np.linalg.norm(base)
        half = after.shape[1] // 2
        left, right = np.abs(after[:, :half]).sum(), np.abs(after[:, half:]).sum()
        assert (left > right) if k < 10 else (right > left)


def test_the_full_table_varies_images_validly(image):
    changed = 0
    for seed in range(40):
        stored, spec = augment(image, PHANTOM_SPEC, np.random.default_rng(seed))
        if stored is image:
            continue
        changed += 1
        assert_valid(stored, spec)
    assert changed >= 38  # with 13 shifts at 0.15-0.5 almost every image gets at least one


def test_probabilities_are_checked():
    assert check_probabilities({"noise": 0})["noise"] == 0.0
    with pytest.raises(ValueError, match="'nosie': unknown"):
        check_probabilities({"nosie": 0.5})
    with pytest.raises(ValueError, match="probability must be"):
        check_probabilities({"noise": 1.5})
    img = np.zeros((16, 16), np.float32)
    assert augment(img, PHANTOM_SPEC, np.random.default_rng(0), {n: 0.0 for n in NAMES})[0] is img


@pytest.mark.parametrize(
    "spec",
    [
        PixelSpec(window_center=2000, window_width=3000),
        PixelSpec(window_center=2000, window_width=3000, voi_function="LINEAR_EXACT", invert=True),
        PixelSpec(window_center=1500, window_width=800, voi_function="SIGMOID"),
        PixelSpec(bits_stored=12),
        PixelSpec(window_center=2000, window_width=3000, bits_stored=12, rescale_slope=0.5, rescale_intercept=100),
    ],
)
def test_decode_matches_the_runtime_reference(spec):
    stored = np.random.default_rng(0).integers(0, 2**16, (40, 50)).astype(np.uint16)
    np.testing.assert_allclose(decode(stored, spec), stored_to_intensity(stored, spec), atol=2e-5)


def test_compact_keeps_small_integer_images_and_shrinks_the_rest(image):
    png = np.rint(image * 255).astype(np.uint8)
    assert compact(png, spec_for_8bit(), 256)[0] is png
    stored, spec = compact(image, PHANTOM_SPEC, 256)  # float -> uint16, same picture
    assert stored.dtype == np.uint16 and spec == BASE_SPEC
    np.testing.assert_allclose(decode(stored, spec), image, atol=1e-4)
    big, c, w = to_stored(generate_case(10, seed=0, size=300).image, bits=12)
    small, spec = compact(big, PixelSpec(window_center=c, window_width=w, bits_stored=12), 100)
    assert small.shape == (100, 100)
    assert np.abs(shown(small, spec) - shown(big, PixelSpec(window_center=c, window_width=w))).mean() < 0.01
