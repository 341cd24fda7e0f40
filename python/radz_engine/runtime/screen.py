"""Screening many files: decode + preprocess on decode workers (threads by default), the model
in batches, results streamed in input order. Which files: io/discover.py; results on disk:
runtime/screen_output.py.

Threads, not processes, by default: the C++ preprocessing releases the GIL and the model (ONNX
Runtime) too, so decode threads overlap the model with no pipe in the hot path: a spawn process
pool pickled every tensor through a pipe (21% of a worker's time at 512 px in the profile of
issue 14). `processes=True` keeps a process pool for decoders that hold the GIL (many cores,
heavy Python-side decoding); then one float32 intensity channel crosses the boundary (64 KB at
128 x 128 instead of 197 KB for three normalised channels that differ only by mean/std) and the
parent normalises it into the model's channels.

Thread budget (docs/RUNTIME.md, "Thread budget"): the model gets the engine's `threads` (all
cores when None, ONNX Runtime without spin-waiting); decode workers default to
`default_workers(model_threads)`: the cores the model leaves free, at least 1, at most 4
threads (Python-side DICOM parsing holds the GIL, so more decode threads do not add throughput).
A CPU model on one intra-op thread runs two batches at once (`default_model_runners`): each run
is single-threaded and independent, so the second takes whatever core decoding leaves idle,
with no synchronised parallel region to stall when the cores are shared.
"""

from __future__ import annotations

import multiprocessing
import os
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np

from radz_engine.errors import RadzInputWarning
from radz_engine.io.discover import expand_paths
from radz_engine.io.inputs import source_name
from radz_engine.runtime.prepare import Prepared, error_result, prepare
from radz_engine.runtime.results import Result

__all__ = [
    "prepare_file",
    "screen_paths",
    "run_chunk",
    "default_workers",
    "default_model_threads",
    "default_model_runners",
    "MAX_DECODE_THREADS",
]

MAX_DECODE_THREADS = 4


# -- workers ------------------------------------------------------------------------------------
def prepare_file(source: str | bytes, preprocess_args: dict) -> Prepared | Result:
    """`prepare` for one file in a worker process: never raises (errors are Results), reader notes
    such as colour -> luminance are not errors here and are not printed by every worker."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prepare(source, preprocess_args)


def prepare_intensity(source: str, preprocess_args: dict) -> Prepared | Result:
    """prepare_file with a single-channel intensity tensor [1, H, W] (mean 0, std 1): what a
    worker process sends back; `normalise` makes the model's channels from it."""
    return prepare_file(source, {**preprocess_args, "mean": (0.0,), "std": (1.0,)})


def normalise(item: Prepared | Result, mean, std) -> Prepared | Result:
    """[1, H, W] intensities -> [C, H, W] float32 (intensity - mean[c]) / std[c], as the C++ core
    writes them (in double, rounded once)."""
    if isinstance(item, Prepared):
        mean = np.asarray(mean, np.float64)[:, None, None]
        std = np.asarray(std, np.float64)[:, None, None]
        item.tensor = ((item.tensor.astype(np.float64) - mean) / std).astype(np.float32)
    return item


def _prepare_in_thread(source: str, preprocess_args: dict) -> Prepared | Result:
    """prepare() for a decode thread. Warning filters are process-wide and not thread-safe to
    change, so screen_paths silences reader notes once around the whole pool instead."""
    try:
        return prepare(source, preprocess_args)
    except Exception as error:  # pragma: no cover - prepare returns error Results itself
        return error_result(source_name(source, None), error)


def _ordered(pool: Executor | None, fn, sources: list[str], args: dict, window: int) -> Iterator[Prepared | Result]:
    """fn(source, args) over sources, in order, with at most `window` files in flight."""
    if pool is None:
        for source in sources:
            yield fn(source, args)
        return
    queue: deque = deque()
    it = iter(sources)
    for source in it:
        queue.append(pool.submit(fn, source, args))
        if len(queue) >= window:
            break
    while queue:
        result = queue.popleft().result()
        nxt = next(it, None)
        if nxt is not None:
            queue.append(pool.submit(fn, nxt, args))
        yield result


def _prepared(
    sources: list[str], preprocess_args: dict, workers: int, window: int, processes: bool = False
) -> Iterator[Prepared | Result]:
    """Prepared inputs (or error Results) for sources, in order."""
    if workers <= 0:
        yield from _ordered(None, prepare_file, sources, preprocess_args, window)
    elif processes:
        mean, std = preprocess_args["mean"], preprocess_args["std"]
        # spawn, not fork: the parent runs C++ and ONNX Runtime thread pools (fork could deadlock).
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for item in _ordered(pool, prepare_intensity, sources, preprocess_args, window):
                yield normalise(item, mean, std)
    else:
        with warnings.catch_warnings():
            # Reader notes (colour -> luminance, pydicom's value checks) are not errors in a
            # screen, as in worker processes; set once here, never from the decode threads.
            warnings.simplefilter("ignore", RadzInputWarning)
            warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="radz-decode") as pool:
                yield from _ordered(pool, _prepare_in_thread, sources, preprocess_args, window)


def cores() -> int:
    """The CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def default_workers(model_threads: int | None = None, processes: bool = False) -> int:
    """Decode workers that do not oversubscribe the cores: the cores the model's `model_threads`
    leave free (None: the model uses them all), at least 1; threads also at most
    MAX_DECODE_THREADS (their Python-side parsing shares the GIL)."""
    n = cores()
    free = n - (n if model_threads is None else min(n, int(model_threads)))
    if processes:
        return max(1, free if model_threads is not None else n - 1)
    return max(1, min(MAX_DECODE_THREADS, free))


def default_model_threads() -> int:
    """Model (intra-op) threads for an engine made to screen: the cores left after the decode
    threads a screen would start beside a model on every core, half the cores at most:
    C - max(1, min(MAX_DECODE_THREADS, C // 2)), at least 1 (2 cores: 1 model + 1 decode thread;
    8: 4 + 4; 16: 12 + 4). Measured on 2 cores (docs/BENCHMARKS.md): `--threads 1` screens
    faster than the model on both cores beside a decode thread."""
    n = cores()
    return max(1, n - max(1, min(MAX_DECODE_THREADS, n // 2)))


def default_model_runners(engine) -> int:
    """Batches in the model at once while screening: 2 for an engine with one CPU backend whose
    model runs on one intra-op thread on a machine with more cores (ONNX Runtime / OpenVINO runs
    are thread-safe and single-threaded there, so two overlap with no shared parallel region);
    1 otherwise (GPU backends queue on their device; a multi-threaded model already spans cores)."""
    backends = getattr(engine, "backends", [getattr(engine, "backend", None)])
    on_cpu = len(backends) == 1 and str(getattr(backends[0], "device", "")).startswith("cpu")
    return 2 if on_cpu and getattr(engine, "threads", None) == 1 and cores() > 1 else 1


def screen_paths(
    engine,
    paths,
    *,
    progress: bool = True,
    workers: int | None = None,
    skip: Iterable[str] = (),
    batch_size: int | None = None,
    processes: bool = False,
    model_runners: int | None = None,
) -> Iterator[Result]:
    """Results for every file under `paths` (see expand_paths) except those in `skip`, in order.

    workers: decode workers (None: default_workers(engine.threads); 0: decode in this thread).
    processes: decode in spawned processes instead of threads (one channel crosses the pipe).
    batch_size: model batch (default: the engine's max_batch_size).
    model_runners: batches in the model at once (None: default_model_runners(engine)).
    """
    skip = set(map(str, skip))
    sources = [s for s in expand_paths(paths) if s not in skip]
    model_threads = getattr(engine, "threads", None)
    workers = default_workers(model_threads, processes) if workers is None else int(workers)
    batch = int(batch_size or engine.max_batch_size)
    args = engine.bundle.preprocess_args()
    runners = default_model_runners(engine) if model_runners is None else int(model_runners)
    if runners < 1:
        raise ValueError(f"model_runners: must be >= 1, got {model_runners!r}")
    stream = _prepared(sources, args, workers, window=max(2 * batch, 4 * max(1, workers)), processes=processes)
    results = _results(engine, stream, batch, runners)
    try:
        if progress:  # counts results handed out, not files decoded ahead of the model
            from radz_engine.runtime.progress import progress as bar

            yield from bar(results, total=len(sources), desc="radz screen", unit="img")
        else:
            yield from results
    finally:
        results.close()  # a caller that stops early stops new batches now (running ones finish), not at GC


def _results(engine, stream: Iterable[Prepared | Result], batch: int, runners: int) -> Iterator[Result]:
    if runners == 1:
        for chunk in _chunks(stream, batch):
            yield from run_chunk(engine, chunk)
        return
    # Batches run on `runners` threads; results are yielded in input order, at most runners + 1
    # batches past the one being yielded.
    with ThreadPoolExecutor(max_workers=runners, thread_name_prefix="radz-model") as pool:
        running: deque = deque()
        for chunk in _chunks(stream, batch):
            running.append(pool.submit(run_chunk, engine, chunk))
            while len(running) > runners:
                yield from running.popleft().result()
        while running:
            yield from running.popleft().result()


def _chunks(stream: Iterable[Prepared | Result], batch: int) -> Iterator[list[Prepared | Result]]:
    """Consecutive items, cut after every `batch` Prepared ones (error Results ride along)."""
    chunk: list[Prepared | Result] = []
    prepared = 0
    for item in stream:
        chunk.append(item)
        prepared += isinstance(item, Prepared)
        if prepared >= batch:
            yield chunk
            chunk, prepared = [], 0
    if chunk:
        yield chunk


def run_chunk(engine, chunk: list[Prepared | Result]) -> list[Result]:
    """engine.run_prepared, with a failing batch failing its files instead of the screen."""
    try:
        results = engine.run_prepared(chunk)
    except Exception as error:
        return [
            c
            if isinstance(c, Result)
            else Result(
                source=c.source,
                error=f"{c.source}: model failed ({type(error).__name__}: {error})",
                metadata=c.metadata,
            )
            for c in chunk
        ]
    for result, item in zip(results, chunk):
        if isinstance(item, Prepared):
            result.timings["queue"] = 0.0  # no queue in screening (the column stays filled)
    return results
