"""`radz synth --transfer-syntax`: phantom DICOMs in every transfer syntax of a real archive,
encoded with the libraries pydicom's plugins use (imagecodecs where they cannot encode), read
back through radz_engine.io.dicom.read_dicom: lossless syntaxes give the same stored values,
lossy ones stay within a stated error; dcmtk's dcmdump -E parses every file.

Lossy bounds, in display units (stored difference / WindowWidth, so 1.0 is the whole window),
measured on 128-px phantoms of every site, seeds 0-2: j2k (10:1) max 0.074, RMS 0.015;
jpeg-baseline (quality 90, 8 bits) max 0.074, RMS 0.013. Asserted: max <= 0.12, RMS <= 0.025.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

pytest.importorskip("pydicom")
pytest.importorskip("imagecodecs")

from radz_engine.io.dicom import read_dicom  # noqa: E402
from radz_train.data.dicom_out import LOSSY, TRANSFER_SYNTAXES, case_dataset, write_case  # noqa: E402
from radz_train.data.phantom import SITES, generate_case  # noqa: E402
from radz_train.data.synth_cli import TRANSFER_SYNTAX_NAMES  # noqa: E402
from radz_train.data.synth_cli import main as synth_main  # noqa: E402

LOSSLESS = [name for name in TRANSFER_SYNTAXES if name not in LOSSY]
MAX_ERROR, RMS_ERROR = 0.12, 0.025


def _reference(case):
    ds = case_dataset(case)
    return ds, ds.pixel_array.astype(np.float64)


def test_names_match_between_cli_and_writer():
    assert TRANSFER_SYNTAX_NAMES == tuple(TRANSFER_SYNTAXES)


@pytest.mark.parametrize("site", sorted(SITES))
@pytest.mark.parametrize("name", LOSSLESS)
def test_lossless_syntaxes_read_back_identical(tmp_path, name, site):
    case = generate_case(2, seed=7, site=site, size=96)
    ds0, reference = _reference(case)
    path = write_case(case, tmp_path / f"{name}.dcm", transfer_syntax=name)
    image = read_dicom(path)
    assert image.metadata["TransferSyntaxUID"] == TRANSFER_SYNTAXES[name]
    assert image.pixels.shape == reference.shape
    assert np.array_equal(image.pixels.astype(np.float64), reference)
    # The display is the same: window and photometric are kept (htj2k widens BitsStored only).
    assert image.spec.window_center == pytest.approx(float(ds0.WindowCenter))
    assert image.spec.invert == (ds0.PhotometricInterpretation == "MONOCHROME1")
    expected_bits = 16 if name == "htj2k-lossless" else int(ds0.BitsStored)
    assert image.spec.bits_stored == expected_bits


@pytest.mark.parametrize("site", sorted(SITES))
@pytest.mark.parametrize("name", LOSSY)
def test_lossy_syntaxes_within_stated_error(tmp_path, name, site):
    case = generate_case(1, seed=3, site=site, size=128)
    ds0, reference = _reference(case)
    path = write_case(case, tmp_path / f"{name}.dcm", transfer_syntax=name)
    image = read_dicom(path)
    pixels = image.pixels.astype(np.float64)
    if name == "jpeg-baseline":  # 8-bit stored values: back onto the original stored scale
        assert image.pixels.dtype == np.uint8 and image.spec.bits_stored == 8
        pixels = pixels * (2 ** int(ds0.BitsStored) - 1) / 255.0
    error = (pixels - reference) / float(ds0.WindowWidth)
    assert np.abs(error).max() <= MAX_ERROR
    assert np.sqrt(np.mean(error**2)) <= RMS_ERROR
    ds = case_dataset(case, transfer_syntax=name)
    assert ds.LossyImageCompression == "01"
    assert float(ds.LossyImageCompressionRatio) > 2.0


def test_jpeg_baseline_window_displays_like_the_original():
    """v8 = v * s with the window scaled so that DICOM LINEAR gives the same display."""
    from radz_engine.preprocessing.reference import stored_to_intensity

    case = generate_case(0, seed=5, site="site_a", size=96)
    lossless = read_dicom(case_dataset(case, transfer_syntax="explicit-le"))
    baseline = read_dicom(case_dataset(case, transfer_syntax="jpeg-baseline"))
    a = stored_to_intensity(lossless.pixels, lossless.spec)
    b = stored_to_intensity(baseline.pixels, baseline.spec)
    assert np.sqrt(np.mean((a - b) ** 2)) <= RMS_ERROR


def test_unknown_syntax_is_rejected():
    case = generate_case(0, seed=0, site="site_a", size=64)
    with pytest.raises(ValueError, match="transfer_syntax must be one of"):
        case_dataset(case, transfer_syntax="jpeg-xl")


@pytest.mark.skipif(shutil.which("dcmdump") is None, reason="dcmtk's dcmdump is not installed")
def test_cli_writes_every_syntax_that_dcmdump_parses(tmp_path):
    for name in TRANSFER_SYNTAXES:
        out = tmp_path / name
        assert synth_main(["--out", str(out), "--n", "1", "--size", "64", "--format", "dicom",
                           "--transfer-syntax", name, "--quiet"]) == 0  # fmt: skip
        path = out / "images" / "0000000.dcm"
        run = subprocess.run(["dcmdump", "-E", "-Un", str(path)], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, (name, run.stderr)
        assert TRANSFER_SYNTAXES[name] in run.stdout  # (0002,0010) names the syntax
        assert "W: " not in run.stderr and "E: " not in run.stderr, (name, run.stderr)


def test_cli_rejects_transfer_syntax_without_dicom(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        synth_main(["--out", str(tmp_path), "--n", "1", "--format", "png", "--transfer-syntax", "rle"])
    assert exit_info.value.code == 2
    assert "needs --format dicom" in capsys.readouterr().err
