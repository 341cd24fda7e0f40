"""The pydicom-free header reader (io.dicom_header) against pydicom: on random datasets,
`read_dicom` through the native reader gives exactly what it gives through pydicom (pixels,
spec, metadata, warnings, errors), the native reader is really taken on plain files, and odd or
hostile files go to pydicom instead of being misread."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless, generate_uid

import radz_engine.io.dicom as dicom
from radz_engine.errors import DicomInputError
from radz_engine.io.dicom_header import NativeDataset, read_native
from test_dicom import make_dataset, to_bytes  # the CR dataset every DICOM test starts from

CR = "1.2.840.10008.5.1.4.1.1.1"
READ_NATIVE = dicom._read_native  # hypothesis reuses one monkeypatch for every example


def build(pixels: np.ndarray, *, implicit=False, photometric="MONOCHROME2", bits_stored=None, frames=1, **tags):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns on the invalid values some tests set on purpose
        return _build(pixels, implicit, photometric, bits_stored, frames, tags)


def _build(pixels, implicit, photometric, bits_stored, frames, tags):
    undefined = tags.pop("undefined_lengths", False)
    ds = make_dataset(pixels, photometric=photometric, bits_stored=bits_stored, **tags)
    if implicit:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    if frames > 1:
        ds.NumberOfFrames = frames
        ds.PixelData = np.concatenate([pixels.ravel()] * frames).tobytes()
    for element in ds.iterall():
        if element.VR == "SQ":
            element.is_undefined_length = undefined
    return ds


def outcome(data: bytes, *, native: bool, monkeypatch) -> tuple:
    """read_dicom's result as comparable values: (pixels, dtype, spec fields, metadata, warnings)
    or ("error", message)."""
    taken = []

    def spy(*args):
        image = READ_NATIVE(*args)
        taken.append(image is not None)
        return image

    monkeypatch.setattr(dicom, "_read_native", spy if native else (lambda *args: None))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            image = dicom.read_dicom(data, min_size=8)
        except DicomInputError as exc:
            return ("error", str(exc)), taken
    spec = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in dataclasses.asdict(image.spec).items()}
    notes = sorted(str(w.message) for w in caught if "radz" in w.category.__module__)
    return (image.pixels.tobytes(), str(image.pixels.dtype), image.pixels.shape, spec, image.metadata, notes), taken


def distractors(draw) -> dict:
    """Elements the reader must skip: sequences of both length encodings, nested, private tags, long text."""
    tags = {}
    if draw(st.booleans()):
        inner = Dataset()
        inner.ReferencedSOPClassUID, inner.ReferencedSOPInstanceUID = CR, generate_uid()
        if draw(st.booleans()):
            deeper = Dataset()
            deeper.CodeValue, deeper.CodingSchemeDesignator, deeper.CodeMeaning = (
                "1",
                "DCM",
                "x" * draw(st.integers(0, 40)),
            )
            inner.PurposeOfReferenceCodeSequence = Sequence([deeper])
        inner.is_undefined_length_sequence_item = draw(st.booleans())
        tags["ReferencedImageSequence"] = Sequence([inner] * draw(st.integers(0, 3)))
        tags["undefined_lengths"] = draw(st.booleans())
    if draw(st.booleans()):
        tags["ImageComments"] = "remark " * draw(st.integers(0, 50))
    return tags


@st.composite
def plain_files(draw):
    dtype = draw(st.sampled_from([np.uint8, np.uint16, np.int16]))
    info = np.iinfo(dtype)
    shape = (draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    seed = draw(st.integers(0, 2**32 - 1))
    pixels = np.random.default_rng(seed).integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    bits = 8 * np.dtype(dtype).itemsize
    tags = distractors(draw)
    number = st.floats(-5000, 5000, allow_nan=False).map(lambda x: f"{x:.6g}")
    if draw(st.booleans()):
        tags["WindowCenter"] = draw(st.sampled_from([None, "", "  40", "40\\80", "1e3"]) | number)
        tags["WindowWidth"] = draw(st.sampled_from([None, "", "0", "400\\800 ", "-3"]) | number)
    if draw(st.booleans()):
        tags["VOILUTFunction"] = draw(st.sampled_from(["LINEAR", "LINEAR_EXACT", "SIGMOID", "bogus", ""]))
    if draw(st.booleans()):
        tags["RescaleSlope"] = draw(st.sampled_from(["1", "0.5", "2", ""]))
        tags["RescaleIntercept"] = draw(st.sampled_from(["0", "-1024", "+7.5", ""]))
    if draw(st.booleans()):
        tags["PixelPaddingValue"] = draw(st.integers(int(info.min), int(info.max)))
        if draw(st.booleans()):
            tags["PixelPaddingRangeLimit"] = draw(st.integers(int(info.min), int(info.max)))
    for keyword in ("ViewPosition", "BodyPartExamined"):
        if draw(st.booleans()):
            tags[keyword] = draw(st.sampled_from(["", "PA", "CHEST", "AP "]))
    return to_bytes(
        build(
            pixels,
            implicit=draw(st.booleans()),
            photometric=draw(st.sampled_from(["MONOCHROME1", "MONOCHROME2"])),
            bits_stored=draw(st.integers(1, bits)),
            frames=draw(st.integers(1, 3)),
            **{k: v for k, v in tags.items() if v is not None},
        )
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=plain_files())
def test_random_plain_files_read_natively_exactly_as_pydicom(data, monkeypatch):
    native, taken = outcome(data, native=True, monkeypatch=monkeypatch)
    reference, _ = outcome(data, native=False, monkeypatch=monkeypatch)
    assert native == reference
    assert taken == [True], "a plain file must not need pydicom"


def test_plain_file_values_are_pydicoms(monkeypatch):
    ds = build(
        np.arange(12, dtype=np.uint16).reshape(3, 4), WindowCenter="40\\80", WindowWidth=" 400 ", NumberOfFrames="1 "
    )
    ds.ViewPosition = "PA"
    header = read_native(to_bytes(ds))
    assert isinstance(header, NativeDataset)
    assert header.get("WindowCenter") == [40.0, 80.0] and header.WindowWidth == 400.0
    assert header.get("NumberOfFrames") == 1 and header.Rows == 3 and "ViewPosition" in header
    assert header.get("VOILUTFunction") is None and "PixelPaddingValue" not in header
    assert header.file_meta.get("TransferSyntaxUID") == ExplicitVRLittleEndian
    assert bytes(header.PixelData) == ds.PixelData
    with pytest.raises(KeyError, match="does not read PatientName"):
        header.get("PatientName")  # only the tags radz needs are read, and patient data never


def _with(ds_change) -> bytes:
    ds = build(np.arange(64, dtype=np.uint16).reshape(8, 8), bits_stored=12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the invalid values are the point
        ds_change(ds)
        return to_bytes(ds)


def _voi_lut(ds):
    item = Dataset()
    item.LUTDescriptor, item.LUTData = [4, 0, 8], np.array([0, 80, 160, 255], "<u2").tobytes()
    ds.VOILUTSequence = Sequence([item])


def _colour(ds):
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelData = np.random.default_rng(1).integers(0, 255, (8, 8, 3), dtype=np.uint8).tobytes()


ODD = {
    "VOI LUT sequence": _voi_lut,
    "colour": _colour,
    "non-ASCII view": lambda ds: setattr(ds, "ViewPosition", "ÄP"),
    "malformed window": lambda ds: (setattr(ds, "WindowCenter", "40"), setattr(ds, "WindowWidth", "400")),
    "multi-valued modality": lambda ds: setattr(ds, "Modality", ["CR", "DX"]),
    "too few pixel bytes": lambda ds: setattr(ds, "PixelData", ds.PixelData[:50]),
    "frames beyond the bytes": lambda ds: setattr(ds, "NumberOfFrames", 4),
    "Rows as SS": lambda ds: ds["Rows"].__setattr__("VR", "SS"),
}


@pytest.mark.parametrize("name", list(ODD))
def test_odd_files_go_to_pydicom_with_the_same_result(name, monkeypatch):
    data = _with(ODD[name])
    if name == "malformed window":
        data = data.replace(b"P\x10DS\x02\x0040", b"P\x10DS\x02\x004O")  # pydicom refuses to set it
        assert b"4O" in data
    native, taken = outcome(data, native=True, monkeypatch=monkeypatch)
    reference, _ = outcome(data, native=False, monkeypatch=monkeypatch)
    assert native == reference
    assert taken == [False]


def test_other_syntaxes_and_missing_preamble_are_not_read_here():
    ds = build(np.arange(64, dtype=np.uint16).reshape(8, 8))
    plain = to_bytes(ds)
    assert read_native(plain) is not None
    ds.compress(RLELossless)
    assert read_native(to_bytes(ds)) is None
    assert read_native(plain[128:]) is None  # no preamble
    assert read_native(plain + b"\x00\x00\x00") is None  # trailing bytes that are no element
    for cut in (131, 140, 200, len(plain) - 1):
        assert read_native(plain[:cut]) is None


def test_undefined_length_sequences_are_skipped():
    ds = build(np.arange(64, dtype=np.uint16).reshape(8, 8), WindowCenter="100", WindowWidth="50")
    inner = Dataset()
    inner.ReferencedSOPInstanceUID = generate_uid()
    nested = Dataset()
    nested.CodeValue = "1"
    inner.PurposeOfReferenceCodeSequence = Sequence([nested])
    ds.ReferencedImageSequence = Sequence([inner, inner])
    for implicit in (False, True):
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        ds["ReferencedImageSequence"].is_undefined_length = True
        inner["PurposeOfReferenceCodeSequence"].is_undefined_length = True
        data = to_bytes(ds)
        assert b"\xfe\xff\xdd\xe0" in data  # a sequence delimiter was written
        header = read_native(data)
        assert header is not None and header.WindowCenter == 100.0
        assert bytes(header.PixelData) == ds.PixelData


@pytest.mark.parametrize("item_length", ["defined", "undefined"])
@pytest.mark.parametrize("implicit", [False, True])
def test_mutated_files_read_natively_exactly_as_pydicom(item_length, implicit, monkeypatch):
    """Hostile bytes (1-3 random bytes of the header changed): the reader returns a dataset or
    None, and read_dicom's outcome is the pydicom path's, image or error, every time. Items of an
    undefined-length sequence are parsed by pydicom while reading, so damage there must be seen."""
    ds = build(np.arange(256, dtype=np.uint16).reshape(16, 16), WindowCenter="100", WindowWidth="50")
    inner = Dataset()
    inner.ReferencedSOPInstanceUID = generate_uid()
    inner.is_undefined_length_sequence_item = item_length == "undefined"
    ds.ReferencedImageSequence = Sequence([inner, inner])
    ds["ReferencedImageSequence"].is_undefined_length = True
    if implicit:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    plain = bytearray(to_bytes(ds))
    header_end = len(plain) - len(ds.PixelData)
    rng = np.random.default_rng(7 + implicit)
    native_taken = 0
    for _ in range(150):
        data = bytearray(plain)
        for position in rng.integers(128, header_end, size=rng.integers(1, 4)):
            data[position] = rng.integers(0, 256)
        header = read_native(bytes(data))
        assert header is None or isinstance(header, NativeDataset)
        native, taken = outcome(bytes(data), native=True, monkeypatch=monkeypatch)
        reference, _ = outcome(bytes(data), native=False, monkeypatch=monkeypatch)
        assert native == reference
        native_taken += taken == [True]
    assert native_taken >= 30  # most damage is in values the reader skips or converts alike


def _implicit_declared(data: bytes) -> bytes:
    """An explicit VR file whose file meta says Implicit VR Little Endian (same length)."""
    assert data.count(b"1.2.840.10008.1.2.1\x00") == 1
    return data.replace(b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2\x00\x00\x00")


def _after_pixels(data: bytes) -> bytes:
    """A Modality element after PixelData: tags out of order."""
    return data + b"\x08\x00\x60\x00CS\x02\x00DX"


def _meta_ts_as_ob(data: bytes) -> bytes:
    at = data.find(b"\x02\x00\x10\x00UI")
    return data[: at + 4] + b"OB\x00\x00" + (20).to_bytes(4, "little") + data[at + 8 :]


def _padding_pair(data: bytes) -> bytes:
    """Implicit VR PixelPaddingValue with two values (VM 1 tag)."""
    at = data.find(b"\x28\x00\x20\x01\x02\x00\x00\x00")
    assert at > 0
    return data[:at] + b"\x28\x00\x20\x01\x04\x00\x00\x00\xfb\xff\x03\x00" + data[at + 10 :]


def _undefined_length_is(data: bytes) -> bytes:
    """Implicit VR: an undefined-length sequence's tag turned into ReferencedFrameNumber (IS),
    which pydicom reads as bytes up to the first delimiter, not as a sequence."""
    tag = b"\x08\x00\x40\x11\xff\xff\xff\xff"
    assert data.count(tag) == 1
    return data.replace(tag, b"\x08\x00\x60\x11\xff\xff\xff\xff")


def _nested_undefined(ds):
    inner, nested = Dataset(), Dataset()
    nested.CodeValue = "1"
    inner.PurposeOfReferenceCodeSequence = Sequence([nested])
    inner.is_undefined_length_sequence_item = True
    ds.ReferencedImageSequence = Sequence([inner])
    return ds


BYTE_EDITS = {
    "implicit declared, explicit data": (False, {}, _implicit_declared),
    "tag after PixelData": (False, {}, _after_pixels),
    "transfer syntax with VR OB": (False, {}, _meta_ts_as_ob),
    "window 1e400": (False, {"WindowCenter": "12345", "WindowWidth": "400"}, lambda d: d.replace(b"12345 ", b"1e400 ")),
    "two padding values": (True, {"PixelPaddingValue": 7}, _padding_pair),
    "implicit undefined-length IS": (True, {"undefined_lengths": True}, _undefined_length_is),
}


@pytest.mark.parametrize("name", list(BYTE_EDITS))
def test_edited_files_go_to_pydicom(name, monkeypatch):
    implicit, tags, edit = BYTE_EDITS[name]
    ds = build(np.arange(64, dtype=np.uint16).reshape(8, 8), implicit=implicit, **tags)
    if name == "implicit undefined-length IS":
        ds = _nested_undefined(ds)
        for element in ds.iterall():
            if element.VR == "SQ":
                element.is_undefined_length = True
    data = edit(to_bytes(ds))
    native, taken = outcome(data, native=True, monkeypatch=monkeypatch)
    reference, _ = outcome(data, native=False, monkeypatch=monkeypatch)
    assert native == reference
    assert taken == [False]


@pytest.mark.parametrize(
    "setting", ["reading_validation_mode", "use_none_as_empty_text_VR_value", "use_DS_numpy", "use_IS_numpy"]
)
def test_changed_pydicom_settings_keep_pydicom(setting, monkeypatch):
    """Where the caller changed how pydicom converts values (strict validation, None for empty
    text, numpy numbers), pydicom reads every file: its checks, its values, its errors."""
    data = to_bytes(build(np.arange(64, dtype=np.uint16).reshape(8, 8), ViewPosition=""))
    if setting == "reading_validation_mode":
        monkeypatch.setattr(pydicom.config.settings, setting, pydicom.config.RAISE)
    else:
        monkeypatch.setattr(pydicom.config, setting, True)
    _, taken = outcome(data, native=True, monkeypatch=monkeypatch)
    assert taken == [False]


def test_compressed_files_are_not_read_twice(tmp_path, monkeypatch):
    """Only the head of a compressed file is read before pydicom takes it."""
    ds = build(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    ds.compress(RLELossless)
    path = tmp_path / "rle.dcm"
    path.write_bytes(to_bytes(ds))
    calls = []
    monkeypatch.setattr("radz_engine.io.dicom.read_native", lambda data: calls.append(len(data)))
    dicom.read_dicom(path)
    assert calls == []
