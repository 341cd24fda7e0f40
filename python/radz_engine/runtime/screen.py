"""Screening many files: decoding + preprocessing in a process pool, the model in batches,
results streamed in input order. Which files: io/discover.py; results on disk:
runtime/screen_output.py.

Why workers preprocess too: a decoded 2048 x 2048 radiograph is 8 MB of uint16 but its model
input is ~200 KB, so doing the C++ preprocessing in the worker cuts what crosses the process
boundary ~40x; the parent only batches, runs the model and scores.
"""

from __future__ import annotations

import multiprocessing
import os
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor

from radz_engine.io.discover import expand_paths
from radz_engine.runtime.prepare import Prepared, prepare
from radz_engine.runtime.results import Result

__all__ = ["prepare_file", "screen_paths", "run_chunk", "default_workers"]


# -- workers ------------------------------------------------------------------------------------
def prepare_file(source: str | bytes, preprocess_args: dict) -> Prepared | Result:
    """`prepare` for one file in a worker: never raises (errors are Results), reader notes such
    as colour -> luminance are not errors here and are not printed by every worker."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prepare(source, preprocess_args)


def _prepared(sources: list[str], preprocess_args: dict, workers: int, window: int) -> Iterator[Prepared | Result]:
    """prepare_file over sources, in order, with at most `window` files in flight."""
    if workers <= 0:
        for source in sources:
            yield prepare_file(source, preprocess_args)
        return
    # spawn, not fork: the parent runs C++ and ONNX Runtime thread pools (fork could deadlock).
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        queue: deque = deque()
        it = iter(sources)
        for source in it:
            queue.append(pool.submit(prepare_file, source, preprocess_args))
            if len(queue) >= window:
                break
        while queue:
            result = queue.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                queue.append(pool.submit(prepare_file, nxt, preprocess_args))
            yield result


def default_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


def screen_paths(
    engine,
    paths,
    *,
    progress: bool = True,
    workers: int | None = None,
    skip: Iterable[str] = (),
    batch_size: int | None = None,
) -> Iterator[Result]:
    """Results for every file under `paths` (see expand_paths) except those in `skip`, in order.

    workers: decoding processes (None: cores - 1; 0: decode in this process).
    batch_size: model batch (default: the engine's max_batch_size).
    """
    skip = set(map(str, skip))
    sources = [s for s in expand_paths(paths) if s not in skip]
    workers = default_workers() if workers is None else int(workers)
    batch = int(batch_size or engine.max_batch_size)
    args = engine.bundle.preprocess_args()
    stream = _prepared(sources, args, workers, window=max(2 * batch, 4 * max(1, workers)))
    if progress:
        from radz_engine.runtime.progress import progress as bar

        stream = bar(stream, total=len(sources), desc="radz screen", unit="img")
    chunk: list[Prepared | Result] = []
    for item in stream:
        chunk.append(item)
        if sum(1 for c in chunk if isinstance(c, Prepared)) >= batch:
            yield from run_chunk(engine, chunk)
            chunk = []
    if chunk:
        yield from run_chunk(engine, chunk)


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
