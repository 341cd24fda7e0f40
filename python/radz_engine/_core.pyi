# Type stubs of radz_engine._core (the pybind11 extension). Generated with pybind11-stubgen from
# the built module, then checked in CI against it with `python -m mypy.stubtest radz_engine._core`:
# regenerate after changing cpp/bindings/ (pybind11-stubgen radz_engine._core -o /tmp/stubs).
"""
radz_engine C++ core: preprocessing, dynamic batching, anchor scoring and similar-case retrieval.
"""

from __future__ import annotations

import collections.abc
import typing

import numpy
import numpy.typing
import typing_extensions

class VoiFunction:
    """
    Members:

      LINEAR

      LINEAR_EXACT

      SIGMOID
    """

    LINEAR: typing.ClassVar[VoiFunction]
    LINEAR_EXACT: typing.ClassVar[VoiFunction]
    SIGMOID: typing.ClassVar[VoiFunction]
    __members__: typing.ClassVar[dict[str, VoiFunction]]
    @typing.overload
    def __eq__(self, other: VoiFunction) -> bool: ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool: ...
    def __getstate__(self) -> int: ...
    def __hash__(self) -> int: ...
    def __index__(self) -> int: ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    def __int__(self) -> int: ...
    @typing.overload
    def __ne__(self, other: VoiFunction) -> bool: ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool: ...
    def __repr__(self) -> str: ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    def __str__(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...

class PixelSpec:
    """
    Grayscale pipeline parameters (see radz_engine.PixelSpec).
    """

    invert: bool
    voi_function: VoiFunction
    def __init__(self) -> None: ...
    def validate(self) -> None: ...
    @property
    def bits_stored(self) -> int: ...
    @bits_stored.setter
    def bits_stored(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def padding_limit(self) -> float | None: ...
    @padding_limit.setter
    def padding_limit(self, arg0: typing.SupportsFloat | typing.SupportsIndex | None) -> None: ...
    @property
    def padding_value(self) -> float | None: ...
    @padding_value.setter
    def padding_value(self, arg0: typing.SupportsFloat | typing.SupportsIndex | None) -> None: ...
    @property
    def rescale_intercept(self) -> float: ...
    @rescale_intercept.setter
    def rescale_intercept(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None: ...
    @property
    def rescale_slope(self) -> float: ...
    @rescale_slope.setter
    def rescale_slope(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None: ...
    @property
    def voi_lut(self) -> list[float]: ...
    @voi_lut.setter
    def voi_lut(self, arg0: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex]) -> None: ...
    @property
    def voi_lut_bits(self) -> int: ...
    @voi_lut_bits.setter
    def voi_lut_bits(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def voi_lut_first(self) -> int: ...
    @voi_lut_first.setter
    def voi_lut_first(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def window_center(self) -> float | None: ...
    @window_center.setter
    def window_center(self, arg0: typing.SupportsFloat | typing.SupportsIndex | None) -> None: ...
    @property
    def window_width(self) -> float | None: ...
    @window_width.setter
    def window_width(self, arg0: typing.SupportsFloat | typing.SupportsIndex | None) -> None: ...

class ThreadPool:
    """
    Worker threads for preprocess_batch.
    """
    def __init__(self, num_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> None: ...
    @property
    def size(self) -> int: ...

class OutputType:
    """
    Members:

      FLOAT32

      FLOAT16
    """

    FLOAT16: typing.ClassVar[OutputType]
    FLOAT32: typing.ClassVar[OutputType]
    __members__: typing.ClassVar[dict[str, OutputType]]
    @typing.overload
    def __eq__(self, other: OutputType) -> bool: ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool: ...
    def __getstate__(self) -> int: ...
    def __hash__(self) -> int: ...
    def __index__(self) -> int: ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    def __int__(self) -> int: ...
    @typing.overload
    def __ne__(self, other: OutputType) -> bool: ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool: ...
    def __repr__(self) -> str: ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    def __str__(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...

class OutputSpec:
    """
    Model input: size, normalisation, aspect, dtype.
    """

    dtype: OutputType
    letterbox: bool
    def __init__(self) -> None: ...
    def validate(self) -> None: ...
    @property
    def channels(self) -> int: ...
    @property
    def height(self) -> int: ...
    @height.setter
    def height(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def mean(self) -> list[float]: ...
    @mean.setter
    def mean(self, arg0: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex]) -> None: ...
    @property
    def pad_value(self) -> float: ...
    @pad_value.setter
    def pad_value(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None: ...
    @property
    def std(self) -> list[float]: ...
    @std.setter
    def std(self, arg0: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex]) -> None: ...
    @property
    def width(self) -> int: ...
    @width.setter
    def width(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...

class Batch:
    """
    What one next_batch() returns: requests to run (.ids, .inputs; then complete() or fail()) and ids that ended without running (.expired, .cancelled, .dropped).
    """
    def __init__(self, *args: typing.Any, **kwargs: typing.Any) -> None:
        """Not constructible: batches come from DynamicBatcher.next_batch()."""
    def __len__(self) -> int:
        """
        Number of requests to run.
        """
    def __repr__(self) -> str: ...
    @property
    def cancelled(self) -> list[int]:
        """
        Ids removed by cancel(); they never run.
        """
    @property
    def dropped(self) -> list[int]:
        """
        Ids removed by shutdown(drain=False); they never run.
        """
    @property
    def expired(self) -> list[int]:
        """
        Ids whose deadline passed before a runner took them; they never run.
        """
    @property
    def id(self) -> int:
        """
        Batch id; 0 when there is nothing to run (only ended ids).
        """
    @property
    def ids(self) -> list[int]:
        """
        Request ids to run, in row order (stat requests first).
        """
    @property
    def inputs(self) -> numpy.typing.NDArray[numpy.float32]:
        """
        [len(batch), *input_shape] float32, a zero-copy view of the batch's own buffer.
        """

class DynamicBatcher:
    """
    Groups single requests into batches for runner threads (C++, thread-safe). The caller owns each request's future, keyed by the id it passes to submit().
    """
    def __init__(
        self,
        input_shape: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex],
        output_size: typing.SupportsInt | typing.SupportsIndex,
        max_batch_size: typing.SupportsInt | typing.SupportsIndex = 32,
        max_delay_ms: typing.SupportsFloat | typing.SupportsIndex = 2.0,
        max_queue: typing.SupportsInt | typing.SupportsIndex = 1024,
        backpressure: str = "block",
        block_timeout_ms: typing.SupportsFloat | typing.SupportsIndex = 1000.0,
        adaptive_delay: bool = True,
    ) -> None: ...
    def cancel(self, id: typing.SupportsInt | typing.SupportsIndex) -> bool:
        """
        Remove request `id` if no runner took it yet: True, and a later batch reports it in .cancelled. False when it runs, has ended or is unknown.
        """
    def complete(self, batch: Batch) -> None:
        """
        The batch ran (its outputs stay with the caller): counts its requests as completed and records their latency. ValueError when the batch is not in flight.
        """
    def fail(self, batch: Batch, message: str) -> None:
        """
        The batch failed: counts its requests as failed. ValueError when the batch is not in flight.
        """
    def metrics(self) -> dict:
        """
        Counters, queue depth, batch-size histogram and latency percentiles (ms) as a dict.
        """
    def next_batch(self, timeout_ms: typing.SupportsFloat | typing.SupportsIndex) -> Batch | None:
        """
        Wait up to timeout_ms (GIL released) for a batch: requests to run and/or ended ids (a batch of len 0 carries only .expired/.cancelled/.dropped and needs no complete()). None on timeout, or when shut down with nothing left to run or report.
        """
    def shutdown(self, drain: bool = True) -> None:
        """
        Stop accepting requests; drain=True lets runners finish the queue, False removes queued requests (reported in a batch's .dropped).
        """
    def submit(
        self,
        id: typing.SupportsInt | typing.SupportsIndex,
        x: numpy.ndarray,
        priority: str = "routine",
        deadline_ms: typing.SupportsFloat | typing.SupportsIndex | None = None,
    ) -> None:
        """
        Queue one float32 input of input_shape as request `id` (register its future first: a runner may take it before this returns). deadline_ms: ms from now after which it is reported in a batch's .expired instead of run. Raises ValueError for an id still queued, in flight or not yet reported, radz_engine.errors.QueueFull under backpressure, RuntimeError after shutdown.
        """
    @property
    def input_shape(self) -> tuple: ...
    @property
    def is_shut_down(self) -> bool: ...
    @property
    def max_batch_size(self) -> int: ...
    @property
    def output_size(self) -> int: ...

class AnchorIndex:
    """
    Zero-shot class scores (softmax | posneg | anchor) with per-class calibration; classes change at run time while other threads score.
    """
    def __contains__(self, arg0: str) -> bool: ...
    def __init__(
        self,
        dim: typing.SupportsInt | typing.SupportsIndex,
        mode: str = "anchor",
        tau: typing.SupportsFloat | typing.SupportsIndex = 0.05,
    ) -> None: ...
    def __len__(self) -> int: ...
    def __repr__(self) -> str: ...
    def add_class(
        self,
        name: str,
        *,
        prompt: typing.Any = None,
        positive: typing.Any = None,
        negative: typing.Any = None,
        anchor: typing.Any = None,
    ) -> None:
        """
        Appends a class; vectors [dim] float32, L2-normalised on entry (the mode's are required).
        """
    def calibration(self, name: str) -> dict:
        """
        A class's calibration: dict(method, params, threshold (None = never positive)).
        """
    def remove_class(self, name: str) -> None: ...
    def replace_class(
        self,
        name: str,
        *,
        prompt: typing.Any = None,
        positive: typing.Any = None,
        negative: typing.Any = None,
        anchor: typing.Any = None,
    ) -> None:
        """
        Replaces a class's vectors; its column and calibration stay.
        """
    def score(self, x: typing.Any) -> dict:
        """
        x [N, dim] L2-normalised embeddings -> dict(scores, probabilities [N, C] float32, positive [N, C] bool, class_names: the columns). GIL released.
        """
    def set_background(self, background: typing.Any) -> None:
        """
        Sets ([dim] vector) or clears (None) the anchor mode's background anchor.
        """
    def set_calibration(
        self,
        name: str,
        method: str,
        params: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex] = [],
        threshold: typing.SupportsFloat | typing.SupportsIndex | None = 0.5,
    ) -> None:
        """
        method 'none' | 'platt' (params [a, b]) | 'temperature' (params [T]); threshold on the calibrated probability, None (or inf) = never positive, as radz_train's Calibration.
        """
    def top_k(
        self, x: typing.Any, k: typing.SupportsInt | typing.SupportsIndex
    ) -> tuple[numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float32]]:
        """
        (indices [N, k'] int64, probabilities [N, k'] float32), most probable first; k' = min(k, len). GIL released.
        """
    @property
    def class_names(self) -> list[str]: ...
    @property
    def dim(self) -> int: ...
    @property
    def has_background(self) -> bool: ...
    @property
    def mode(self) -> str: ...
    @property
    def tau(self) -> float: ...

class VectorIndex:
    """
    FAISS inner-product index over L2-normalised embeddings (similar-case retrieval). Ids are 0..size-1 in the order added. Many threads may search while one adds.
    """
    @staticmethod
    def default_factory(
        n: typing.SupportsInt | typing.SupportsIndex, dim: typing.SupportsInt | typing.SupportsIndex
    ) -> str:
        """
        'Flat' (exact) below 100,000 vectors, else 'IVF<nlist>,Flat' (nlist ~ 4 sqrt(n), benchmarked).
        """
    @staticmethod
    def default_search_parameters(factory: str, n: typing.SupportsInt | typing.SupportsIndex) -> str:
        """
        The ParameterSpace string for default_factory's choice ('' for Flat).
        """
    @staticmethod
    def load(path: str) -> VectorIndex:
        """
        Reads an index written by save(). GIL released.
        """
    @staticmethod
    def num_threads() -> int:
        """
        OpenMP threads FAISS uses from the calling thread.
        """
    @staticmethod
    def set_num_threads(n: typing.SupportsInt | typing.SupportsIndex) -> None:
        """
        OpenMP threads for FAISS batch work started from the calling thread (single queries always use one).
        """
    def __init__(self, dim: typing.SupportsInt | typing.SupportsIndex, factory: str = "Flat") -> None:
        """
        An empty index built by faiss.index_factory(dim, factory, METRIC_INNER_PRODUCT).
        """
    def __len__(self) -> int: ...
    def __repr__(self) -> str: ...
    def add(self, x: typing.Any) -> None:
        """
        Appends x [N, dim] (finite; float16 etc. converted); ids continue from size. GIL released.
        """
    def memory_bytes(self) -> int:
        """
        Approximate size: bytes of the serialised index.
        """
    def save(self, path: str) -> None:
        """
        Writes the index (to path + '.tmp', then renamed over path). GIL released.
        """
    def search(
        self, q: typing.Any, k: typing.SupportsInt | typing.SupportsIndex
    ) -> tuple[numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.int64]]:
        """
        (similarities [N, k] float32, ids [N, k] int64), most similar first; a 1-D q is one query. Rows with fewer than k neighbours are padded with id -1, similarity -inf. GIL released.
        """
    def set_search_parameters(self, params: str) -> None:
        """
        Sets e.g. 'nprobe=16', 'efSearch=128' or 'nprobe=32,k_factor_rf=4' (faiss.ParameterSpace).
        """
    def train(self, x: typing.Any) -> None:
        """
        Trains on x [N, dim] (N >= train_size_hint); only untrained indexes. GIL released.
        """
    @property
    def dim(self) -> int: ...
    @property
    def factory(self) -> str: ...
    @property
    def is_trained(self) -> bool: ...
    @property
    def search_parameters(self) -> str:
        """
        The parameters in effect, as default_search_parameters writes them.
        """
    @property
    def size(self) -> int: ...
    @property
    def train_size_hint(self) -> int:
        """
        Vectors train() needs (0: no training).
        """

def j2k_decode(
    data: typing_extensions.Buffer, min_size: typing.SupportsInt | typing.SupportsIndex = 0
) -> tuple[numpy.ndarray, int, int]:
    """
    Decode one JPEG 2000 / HTJ2K codestream (or JP2 file) at the largest resolution reduction that
    keeps both sides >= min_size (<= 0: full resolution), GIL released. Returns (pixels, reduce,
    precision): pixels uint8 (precision <= 8), uint16, or int16 (signed). Raises ValueError on data
    that is not a single-component 1..16-bit JPEG 2000 image, RuntimeError without OpenJPEG.
    """

def jpeg_decode(
    data: typing_extensions.Buffer, min_size: typing.SupportsInt | typing.SupportsIndex = 0
) -> tuple[numpy.ndarray, int]:
    """
    Decode one 8-bit grayscale JPEG at the largest 1/2, 1/4 or 1/8 DCT scale that keeps both sides
    >= min_size (<= 0: full size), GIL released. Returns (pixels uint8, scale_denom). Raises
    ValueError on data that is not such a JPEG, RuntimeError without libjpeg.
    """

def preprocess(pixels: numpy.ndarray, spec: PixelSpec, output: OutputSpec, out: numpy.ndarray) -> None:
    """
    Stored pixels [H, W] -> out [C, H, W] (GIL released).
    """

def preprocess_batch(
    images: collections.abc.Sequence[numpy.ndarray],
    specs: collections.abc.Sequence[PixelSpec],
    output: OutputSpec,
    out: numpy.ndarray,
    pool: ThreadPool,
) -> None:
    """
    Stored pixels of many sizes -> out [B, C, H, W], in parallel on pool (GIL released).
    """

HAVE_FAISS: bool = True
HAVE_LIBJPEG: bool = True
HAVE_OPENJPEG: bool = True
OPENJPEG_VERSION: str = "2.5.0"
