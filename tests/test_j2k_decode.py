"""JPEG 2000 / HTJ2K decoded by the C++ core (OpenJPEG) at the model's resolution.

Real files: phantom DICOMs written by radz_train.data.dicom_out with pylibjpeg-openjpeg
(JPEG 2000) and OpenJPH (HTJ2K), decoded by the core and compared with pydicom's decode.

Bounds measured here (512-px phantoms, default bundle: out_size 128, decoded at >= 256 px):
the normalised tensor from the reduced decode differs from full decode + area resize by at most
0.78 (mean |diff| <= 0.035) in model input units (about 0.21 / 0.009 in [0, 1] intensity: the
wavelet low-pass rings at the phantoms' hard-edged burned-in markers); asserted: max <= 1.0,
mean <= 0.05. Zero-shot: on 90 phantoms macro AUC equal (0.8495 both), every class within 0.01;
asserted here on 36 phantoms: macro AUC within 0.01.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pydicom")

from pydicom.encaps import generate_frames  # noqa: E402

import radz_engine  # noqa: E402
from radz_engine.errors import DicomInputError  # noqa: E402
from radz_engine.io import dicom as dicom_module  # noqa: E402
from radz_engine.io.dicom import native_j2k_available, read_dicom  # noqa: E402
from radz_engine.runtime.prepare import decode_min_size, prepare  # noqa: E402
from radz_train.data.dicom_out import case_dataset  # noqa: E402
from radz_train.data.phantom import SITES, generate_case  # noqa: E402

pytestmark = pytest.mark.skipif(
    not native_j2k_available(), reason="the C++ core was built without OpenJPEG (libopenjp2-7-dev)"
)
J2K = ("j2k-lossless", "j2k", "htj2k-lossless")
ARGS = {"out_size": (128, 128), "mean": [0.5], "std": [0.25], "aspect": "letterbox", "pad_value": 0.0}


def _frame(ds) -> bytes:
    return next(generate_frames(ds.PixelData, number_of_frames=1))


@pytest.fixture(scope="module")
def cases():
    return [generate_case(i, seed=31, site=sorted(SITES)[i % 3], size=512) for i in range(3)]


@pytest.mark.parametrize("name", J2K)
def test_full_resolution_equals_pydicom(cases, name):
    from radz_engine import _core

    for case in cases:
        ds = case_dataset(case, transfer_syntax=name)
        pixels, reduce, precision = _core.j2k_decode(_frame(ds), 0)
        assert reduce == 0 and pixels.shape == (512, 512) and pixels.dtype == np.uint16
        assert precision == int(ds.BitsStored)
        assert np.array_equal(pixels, ds.pixel_array)


@pytest.mark.parametrize("min_size, side", [(0, 512), (64, 64), (100, 128), (256, 256), (257, 512), (4096, 512)])
def test_level_keeps_at_least_min_size(cases, min_size, side):
    ds = case_dataset(cases[0], transfer_syntax="j2k-lossless")
    image = read_dicom(ds, min_size=min_size or None)
    assert image.pixels.shape == (side, side)
    assert image.metadata["Rows"] == 512  # the tags still describe the full image


def test_reduced_decode_is_the_wavelet_low_pass(cases):
    """Level r approximates the 2^r x 2^r block mean away from hard edges (phantom noise aside)."""
    ds = case_dataset(cases[1], transfer_syntax="j2k-lossless")
    reduced = read_dicom(ds, min_size=128).pixels.astype(np.float64)
    full = ds.pixel_array.astype(np.float64).reshape(128, 4, 128, 4).mean(axis=(1, 3))
    assert np.corrcoef(reduced.ravel(), full.ravel())[0, 1] > 0.95
    assert np.median(np.abs(reduced - full)) < 0.02 * float(ds.WindowWidth)


@pytest.mark.parametrize("name", J2K)
def test_tensor_against_full_decode_and_resize(cases, name):
    assert decode_min_size(ARGS) == 256
    for case in cases:
        ds = case_dataset(case, transfer_syntax=name)
        reduced = prepare(ds, ARGS)
        full = prepare(ds, ARGS, reduced_decode=False)
        assert reduced.tensor.shape == full.tensor.shape == (1, 128, 128)
        diff = np.abs(reduced.tensor - full.tensor)
        assert diff.max() <= 1.0, diff.max()
        assert diff.mean() <= 0.05, diff.mean()


def test_without_openjpeg_pydicom_decodes_full_size(cases, monkeypatch):
    ds = case_dataset(cases[0], transfer_syntax="j2k-lossless")
    monkeypatch.setattr(dicom_module, "native_j2k_available", lambda: False)
    assert read_dicom(ds, min_size=64).pixels.shape == (512, 512)


def test_bad_codestreams(cases):
    from radz_engine import _core

    with pytest.raises(ValueError, match="not a JPEG 2000 codestream"):
        _core.j2k_decode(b"not a codestream at all", 64)
    frame = _frame(case_dataset(cases[0], transfer_syntax="j2k-lossless"))
    with pytest.raises(ValueError, match="JPEG 2000"):
        _core.j2k_decode(frame[:60], 64)  # ends inside the main header


def test_damaged_frame_in_a_file_still_names_the_file(cases, tmp_path):
    """OpenJPEG refuses -> pydicom decodes -> its failure becomes the usual DicomInputError."""
    from pydicom.encaps import encapsulate

    ds = case_dataset(cases[0], transfer_syntax="j2k-lossless")
    ds.PixelData = encapsulate([_frame(ds)[:60]])
    path = tmp_path / "broken.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(DicomInputError, match="broken.dcm"):
        read_dicom(path, min_size=64)


def test_zero_shot_auc_matches_uncompressed_path():
    from sklearn.metrics import roc_auc_score

    with radz_engine.Engine() as engine:
        cases = [generate_case(i, seed=21, site=sorted(SITES)[i % 3], size=512) for i in range(36)]
        plain = engine.classify([case_dataset(c) for c in cases])
        j2k = engine.classify([case_dataset(c, transfer_syntax="j2k-lossless") for c in cases])
    assert all(r.error is None for r in plain + j2k)

    def macro(results):
        aucs = []
        for cls in results[0].scores:
            y = [c.labels.get(cls, 0) for c in cases]
            if cls in cases[0].labels and 0 < sum(y) < len(cases):
                aucs.append(roc_auc_score(y, [r.scores[cls] for r in results]))
        return float(np.mean(aucs))

    assert abs(macro(j2k) - macro(plain)) <= 0.01


def test_build_info_names_the_decoders():
    info = radz_engine.build_info()
    assert info["core"] is True and isinstance(info["faiss"], bool) and isinstance(info["cuda"], bool)
    assert info["openjpeg"] and info["openjpeg"][0].isdigit()
    assert info["decoders"]["j2k-lossless"] == "openjpeg (reduced resolution)"
    assert info["decoders"]["jpeg-ls"] == "pydicom"
    assert info["libjpeg"] is dicom_module.native_jpeg_available()


# --- JPEG baseline with libjpeg-turbo's DCT scaling -------------------------------------------
# Measured (512-px phantoms, decoded at 256 px for the 128-px model): tensor max |diff| 0.020,
# mean 0.0023 against full decode + resize; at 1/8 each pixel is its 8x8 block's mean (+-1.5).


def _needs_libjpeg():
    if not dicom_module.native_jpeg_available():
        pytest.skip("the C++ core was built without libjpeg (libjpeg62-turbo-dev)")


@pytest.mark.parametrize("min_size, side", [(0, 512), (256, 256), (128, 128), (64, 64), (16, 64), (600, 512)])
def test_jpeg_scale_keeps_at_least_min_size(cases, min_size, side):
    _needs_libjpeg()
    ds = case_dataset(cases[0], transfer_syntax="jpeg-baseline")
    assert read_dicom(ds, min_size=min_size or None).pixels.shape == (side, side)


def test_jpeg_full_size_equals_pydicom_and_eighth_is_block_mean(cases):
    _needs_libjpeg()
    from radz_engine import _core

    ds = case_dataset(cases[2], transfer_syntax="jpeg-baseline")
    full, denom = _core.jpeg_decode(_frame(ds), 0)
    assert denom == 1 and full.dtype == np.uint8
    assert np.abs(full.astype(int) - ds.pixel_array.astype(int)).max() <= 1  # IDCT rounding
    eighth, denom = _core.jpeg_decode(_frame(ds), 64)
    assert denom == 8 and eighth.shape == (64, 64)
    block_mean = full.astype(np.float64).reshape(64, 8, 64, 8).mean(axis=(1, 3))
    assert np.abs(eighth - block_mean).max() <= 1.5


def test_jpeg_tensor_against_full_decode_and_resize(cases):
    _needs_libjpeg()
    for case in cases:
        ds = case_dataset(case, transfer_syntax="jpeg-baseline")
        diff = np.abs(prepare(ds, ARGS).tensor - prepare(ds, ARGS, reduced_decode=False).tensor)
        assert diff.max() <= 0.05 and diff.mean() <= 0.005, (diff.max(), diff.mean())


def test_jpeg_bad_streams():
    _needs_libjpeg()
    from radz_engine import _core

    with pytest.raises(ValueError, match="no SOI marker"):
        _core.jpeg_decode(b"GIF89a not a jpeg", 64)
    with pytest.raises(ValueError, match="JPEG decode failed"):
        _core.jpeg_decode(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", 64)


def test_concurrent_decodes_in_threads_agree(cases):
    """The screening pipeline decodes on threads: the core's decoders hold no shared state."""
    from concurrent.futures import ThreadPoolExecutor

    from radz_engine import _core

    j2k = _frame(case_dataset(cases[0], transfer_syntax="j2k-lossless"))
    expected = _core.j2k_decode(j2k, 64)[0]
    with ThreadPoolExecutor(4) as pool:
        outputs = list(pool.map(lambda _: _core.j2k_decode(j2k, 64)[0], range(16)))
    assert all(np.array_equal(o, expected) for o in outputs)
    if dicom_module.native_jpeg_available():
        jpeg = _frame(case_dataset(cases[0], transfer_syntax="jpeg-baseline"))
        expected = _core.jpeg_decode(jpeg, 64)[0]
        with ThreadPoolExecutor(4) as pool:
            outputs = list(pool.map(lambda _: _core.jpeg_decode(jpeg, 64)[0], range(16)))
        assert all(np.array_equal(o, expected) for o in outputs)
