"""PNG / JPEG reader and content-based dispatch (`read_any`). Run with -W error."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from radz_engine.errors import DicomInputError, RadzInputError, RadzInputWarning
from radz_engine.io.dicom import DicomImage
from radz_engine.io.images import RasterImage, read_any, read_image, sniff_format
from radz_engine.preprocessing.pixel_spec import PixelSpec, spec_for_8bit
from radz_engine.preprocessing.reference import stored_to_intensity

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def encode(array: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **options)
    return buffer.getvalue()


def grey8(shape=(40, 60)) -> np.ndarray:
    return (np.arange(shape[0] * shape[1]) % 256).astype(np.uint8).reshape(shape)


def colour8(shape=(40, 60)) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)


def bundled(name: str) -> Path:
    path = PYDICOM_FILES / name
    if not path.is_file():
        pytest.skip(f"{name} is not among pydicom's bundled test files at {PYDICOM_FILES}")
    return path


def test_8bit_grey_png(tmp_path):
    path = tmp_path / "grey.png"
    path.write_bytes(encode(grey8()))
    image = read_image(path)
    assert isinstance(image, RasterImage) and image.source == str(path)
    assert image.pixels.dtype == np.uint8 and np.array_equal(image.pixels, grey8())
    assert image.spec == spec_for_8bit()
    assert image.metadata == {"format": "PNG", "mode": "L", "width": 60, "height": 40}
    assert np.allclose(stored_to_intensity(image.pixels, image.spec), grey8() / 255.0)


def test_16bit_png_keeps_values_with_min_max_spec():
    values = np.linspace(100, 60000, 40 * 60).astype(np.uint16).reshape(40, 60)
    image = read_image(encode(values))
    assert image.pixels.dtype == np.uint16 and np.array_equal(image.pixels, values)
    assert image.spec == PixelSpec()
    intensity = stored_to_intensity(image.pixels, image.spec)
    assert intensity.min() == 0.0 and intensity.max() == 1.0


def test_colour_png_becomes_luminance_with_warning():
    rgb = colour8()
    with pytest.warns(RadzInputWarning, match=r"^<bytes>: RGB image converted to luminance"):
        image = read_image(encode(rgb))
    expected = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert image.pixels.dtype == np.float32 and np.allclose(image.pixels, expected, atol=1e-4)
    assert image.spec == spec_for_8bit()


def test_grey_saved_as_rgb_or_with_alpha_needs_no_conversion():
    grey = grey8()
    rgb = np.repeat(grey[..., None], 3, axis=2)
    for data in (
        encode(rgb),
        encode(np.dstack([rgb, np.full_like(grey, 255)])),
        encode(np.dstack([grey, np.full_like(grey, 128)])),
    ):  # RGB, RGBA, LA
        image = read_image(data)
        assert image.pixels.dtype == np.uint8 and np.array_equal(image.pixels, grey)


def test_grey_jpeg_is_close(tmp_path):
    smooth = np.tile(np.linspace(0, 255, 64), (48, 1)).astype(np.uint8)
    path = tmp_path / "x.jpg"
    path.write_bytes(encode(smooth, "JPEG", quality=95))
    image = read_image(path)
    assert image.pixels.dtype == np.uint8 and image.metadata["format"] == "JPEG"
    assert np.abs(image.pixels.astype(int) - smooth).mean() < 2.0


def test_jpeg_exif_orientation_is_applied():
    im = Image.fromarray(grey8((20, 50)))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    im.save(buffer, "JPEG", exif=exif)
    assert read_image(buffer.getvalue()).pixels.shape == (50, 20)


def test_palette_png_with_colour_warns():
    im = Image.fromarray(colour8()).convert("P")
    buffer = io.BytesIO()
    im.save(buffer, "PNG")
    with pytest.warns(RadzInputWarning, match="P image converted to luminance"):
        assert read_image(buffer.getvalue()).pixels.dtype == np.float32


@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_truncated_png_names_the_file(tmp_path, keep):
    data = encode(colour8((200, 200)))
    path = tmp_path / "cut.png"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(RadzInputError, match=rf"^{path}: truncated or corrupt image"):
        read_image(path)


def test_not_an_image_and_missing_file(tmp_path):
    with pytest.raises(RadzInputError, match=r"^<bytes>: not an image format Pillow can read"):
        read_image(b"hello world" * 10)
    with pytest.raises(RadzInputError, match=r"nope\.png: cannot open"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(RadzInputError, match=rf"^{tmp_path}: cannot open"):
        read_image(tmp_path)  # a directory


def test_size_limits_before_decoding():
    data = encode(grey8((100, 30)))
    with pytest.raises(RadzInputError, match="exceeds max_side 50"):
        read_image(data, max_side=50)
    with pytest.raises(RadzInputError, match="exceeds max_pixels 2999"):
        read_image(data, max_pixels=2999)


def test_sniff_format():
    assert sniff_format(encode(grey8())[:132]) == "png"
    assert sniff_format(encode(grey8(), "JPEG")[:132]) == "jpeg"
    assert sniff_format(bytes(128) + b"DICM") == "dicom"
    assert sniff_format(b"GIF89a") is None


def test_read_any_dispatches_by_content(tmp_path):
    dicom_path = bundled("CT_small.dcm")
    disguised = tmp_path / "scan.png"  # the name lies; the content decides
    disguised.write_bytes(dicom_path.read_bytes())
    for source in (dicom_path, disguised, dicom_path.read_bytes(), pydicom.dcmread(dicom_path)):
        assert isinstance(read_any(source), DicomImage)
    jpeg = tmp_path / "image.dcm"
    jpeg.write_bytes(encode(grey8(), "JPEG"))
    assert isinstance(read_any(jpeg), RasterImage)
    assert isinstance(read_any(encode(grey8())), RasterImage)


def test_read_any_rejects_unknown_content_and_forwards_errors(tmp_path):
    path = tmp_path / "a.gif"
    Image.fromarray(grey8()).save(path, "GIF")
    with pytest.raises(RadzInputError, match=rf"^{path}: unrecognised content"):
        read_any(path)
    with pytest.raises(RadzInputError, match=r"missing\.png: cannot open"):
        read_any(tmp_path / "missing.png")
    with pytest.raises(DicomInputError, match="truncated"):
        read_any(bundled("MR_truncated.dcm"))
    with pytest.raises(DicomInputError, match="multi-frame"):
        read_any(bundled("SC_rgb_rle_2frame.dcm"), frame="error")
