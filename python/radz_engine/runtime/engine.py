"""`Engine`: the runtime's front door (DESIGN.md section 4).

    eng = Engine("bundle/", backend="auto", device="cpu", max_batch_size=64, max_delay_ms=2)
    eng.classify(images)       -> list[Result]      bulk, in batches of max_batch_size
    eng.submit(image)          -> Future[Result]    low latency, thread-safe, dynamic batching
    eng.screen(paths)          -> iterator[Result]  files / folders / CSVs, parallel decoding
    eng.add_classes({...})     zero-shot classes from text (tokenizer + text_encoder.onnx)
    eng.similar(image, k=10, index="idx")  -> list[Neighbour]  similar indexed cases (radz index build)
    eng.stats()                -> Stats: throughput, latency percentiles, queue depth

Every input goes through the one `prepare` step (runtime/prepare.py): decode + preprocess, or an
error Result. `submit` then queues the tensor in the C++ `_core.DynamicBatcher`; runner threads
(runtime/runner.py) pop batches (GIL released while waiting), run the backend, score, and
resolve the request's one `concurrent.futures.Future`. With several devices
(`device=["cuda:0", "cuda:1"]`) each has its own backend replica and runner threads, all popping
from the one queue.
Never imports torch (the torch backend imports it lazily).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from radz_engine.backends import create_backend
from radz_engine.backends.base import Backend
from radz_engine.bundle.loader import load_bundle
from radz_engine.errors import EngineClosed
from radz_engine.io.inputs import is_single_image
from radz_engine.runtime.prepare import Prepared, prepare, prepare_many
from radz_engine.runtime.results import Result
from radz_engine.runtime.runner import Pending, Submitter
from radz_engine.runtime.stats import EngineStats, Stats
from radz_engine.scoring.class_scorer import ClassScorer

__all__ = ["Engine", "EngineClosed"]

log = logging.getLogger(__name__)


class Engine:
    """Zero-shot radiograph classification from a bundle.

    Args:
        bundle_path: a bundle folder (default: the shipped default bundle).
        backend: "auto", "onnxruntime", "tensorrt", "torch", or a Backend instance.
        device: "cpu", "cuda", "cuda:N" or "auto"; or a list of them (e.g. ["cuda:0", "cuda:1"]):
            one backend replica per device, all fed by the one submit() queue (at least one
            runner per device); classify() uses the first.
        max_batch_size: largest batch the backend runs (classify chunks and dynamic batches).
        max_delay_ms: how long submit() waits for a batch to fill, from the oldest request.
        adaptive_delay: dispatch a partial batch before max_delay_ms when no further request is
            expected in time (low load: a lone request runs at once). False: always wait.
        threads: intra-op threads of the backend and C++ preprocessing threads (None: all cores).
        runners: runner threads popping batches for submit().
        mode: scoring mode (default: the bundle's), threshold: positive threshold for classes
            the bundle has not calibrated.
        max_queue, backpressure ("block" or "reject"), block_timeout_ms: the batcher's queue.
        backend_options: passed to the backend (e.g. {"checkpoint": ...} for torch).
        verify_hashes: check the bundle's SHA-256s on load.
        similar_index: a similar-case index folder (radz index build) or SimilarIndex, built with
            this bundle: every Result then carries its `neighbours` nearest indexed cases
            (source, similarity, findings; never patient data). See attach_index().
        neighbours: how many neighbours each Result carries with similar_index (>= 1).
    """

    def __init__(
        self,
        bundle_path: str | Path | None = None,
        backend: str | Backend = "auto",
        device: str | list[str] = "cpu",
        max_batch_size: int = 64,
        max_delay_ms: float = 2.0,
        threads: int | None = None,
        runners: int = 1,
        *,
        mode: str | None = None,
        threshold: float = 0.5,
        max_queue: int = 1024,
        backpressure: str = "block",
        block_timeout_ms: float = 1000.0,
        adaptive_delay: bool = True,
        backend_options: dict | None = None,
        verify_hashes: bool = True,
        similar_index: Any = None,
        neighbours: int = 3,
    ) -> None:
        if int(max_batch_size) < 1:
            raise ValueError(f"max_batch_size: must be >= 1, got {max_batch_size!r}")
        if int(runners) < 1:
            raise ValueError(f"runners: must be >= 1, got {runners!r}")
        if float(max_delay_ms) < 0:
            raise ValueError(f"max_delay_ms: must be >= 0, got {max_delay_ms!r}")
        if threads is not None and int(threads) < 1:
            raise ValueError(f"threads: must be >= 1 or None, got {threads!r}")
        if bundle_path is None:
            from radz_engine.bundle.default import default_bundle_path

            bundle_path = default_bundle_path()
        self.bundle = load_bundle(Path(bundle_path), verify_hashes=verify_hashes)
        self.max_batch_size = int(max_batch_size)
        self.max_delay_ms = float(max_delay_ms)
        self.threads = None if threads is None else int(threads)
        devices = [device] if isinstance(device, str) else list(device)
        if not devices:
            raise ValueError("device: an empty list; give a device such as 'cpu' or ['cuda:0', 'cuda:1']")
        if len(devices) > 1 and not isinstance(backend, str):
            raise ValueError("device: a list of devices needs backend given by name (one replica is made per device)")
        self.runners = max(int(runners), len(devices))
        self._batcher_options = {
            "max_queue": int(max_queue),
            "backpressure": backpressure,
            "block_timeout_ms": float(block_timeout_ms),
            "adaptive_delay": bool(adaptive_delay),
        }
        self.backends = []
        try:
            for d in devices:
                self.backends.append(
                    create_backend(
                        backend,
                        self.bundle,
                        d,
                        threads=self.threads,
                        max_batch_size=self.max_batch_size,
                        **dict(backend_options or {}),
                    )
                )
        except BaseException:  # a device that fails must not leave the others' sessions open
            for made in self.backends:
                made.close()
            raise
        self.backend = self.backends[0]
        self.scorer = ClassScorer(self.bundle, mode=mode, threshold=threshold)
        self.model_info = self.bundle.identity()
        spec = self.bundle.input_spec
        self.input_shape = (int(spec["channels"]), int(spec["size"][0]), int(spec["size"][1]))
        self._preprocess_args = self.bundle.preprocess_args()
        self._text_encoder = None
        self._lock = threading.Lock()
        self._submitter: Submitter | None = None
        self._closing = False
        self._closed = False
        self._stats = EngineStats()
        self._similar: tuple[Any, int] | None = None
        self._opened_indexes: dict[Path, tuple[int, Any]] = {}
        if similar_index is not None:
            self.attach_index(similar_index, k=neighbours)
        log.info(
            "radz_engine: bundle %s, backend %s on %s, scoring %s (%s)",
            self.bundle.path,
            self.backend.name,
            ", ".join(b.device for b in self.backends),
            self.scorer.mode,
            self.scorer.backend,
        )

    # -- properties ------------------------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        return self.scorer.class_names

    def thresholds(self) -> dict[str, float]:
        """{class: positive threshold} in force now (calibrated, or the default; inf: never)."""
        return self.scorer.thresholds()

    def _stamp(self, result: Result, thresholds: dict | None = None) -> Result:
        """Name the model on a Result that does not carry it yet (error Results made before scoring)."""
        if not result.model:
            result.model = dict(self.model_info)
        if not result.thresholds:
            result.thresholds = dict(thresholds if thresholds is not None else self.thresholds())
        return result

    # -- shared stages ---------------------------------------------------------------------------
    def preprocess(self, decoded: Sequence[Any]) -> np.ndarray:
        """Decoded images (radz_engine.io.inputs.decode) -> [B, C, H, W] float32 with the
        bundle's input spec (C++ core)."""
        from radz_engine.preprocessing.native import preprocess_batch

        return preprocess_batch(
            [d.pixels for d in decoded], [d.spec for d in decoded], num_threads=self.threads, **self._preprocess_args
        )

    def _score(self, embeddings: np.ndarray, requests: Sequence[Prepared | Pending], model_ms: float) -> list[Result]:
        """One Result per request from its embedding; timings: the request's own, plus the
        batch's model and score milliseconds."""
        start = time.perf_counter()
        names, scores, positives = self.scorer.score(embeddings)
        found = self._neighbours(embeddings)
        score_ms = (time.perf_counter() - start) * 1000.0
        thresholds = self.thresholds()
        out = []
        for i, request in enumerate(requests):
            timings = request.timings() if isinstance(request, Prepared) else dict(request.timings)
            timings.update(model=model_ms, score=score_ms)
            out.append(
                Result(
                    source=request.source,
                    scores=dict(zip(names, scores[i].tolist())),
                    positives=[n for n, p in zip(names, positives[i]) if p],
                    embedding=embeddings[i].astype(np.float32, copy=True),
                    timings=timings,
                    metadata=request.metadata,
                    model=dict(self.model_info),
                    thresholds=dict(thresholds),
                    neighbours=[n.to_json() for n in found[i]] if found is not None else [],
                )
            )
        return out

    def _neighbours(self, embeddings: np.ndarray) -> list | None:
        """The attached index's neighbours of each embedding; a failed search costs only the
        neighbours (logged), never the batch's scores."""
        similar = self._similar
        if similar is None:
            return None
        try:
            return similar[0].search(embeddings, similar[1])
        except Exception as error:  # noqa: BLE001 - scores must not depend on the optional lookup
            log.warning("radz_engine: similar-case search failed, results carry no neighbours: %s", error)
            return [[] for _ in range(len(embeddings))]

    def _check_open(self) -> None:
        if self._closing:
            raise EngineClosed("the engine is closed")

    # -- classify --------------------------------------------------------------------------------
    def classify(self, images: Any) -> list[Result]:
        """Classify images (see radz_engine.io.inputs for what an image may be); one Result per
        input, in order. Unreadable inputs give a Result with `error` set, never an exception."""
        self._check_open()
        items = [images] if is_single_image(images) else list(images)
        if isinstance(images, np.ndarray) and images.ndim == 3:
            items = list(images)
        results: list[Result] = []
        for start in range(0, len(items), self.max_batch_size):
            chunk = items[start : start + self.max_batch_size]
            results += self.run_prepared(prepare_many(chunk, self._preprocess_args, self.threads, first_index=start))
        self._stats.add(errors=sum(1 for r in results if r.error))
        return results

    def run_prepared(self, prepared: Sequence[Prepared | Result]) -> list[Result]:
        """Backend + scoring for prepared inputs, in one batch; error Results pass through in
        their place. Used by classify, screen and the Ray actors."""
        good = [p for p in prepared if isinstance(p, Prepared)]
        by_id: dict[int, Result] = {}
        if good:
            x = np.stack([p.tensor for p in good])
            start = time.perf_counter()
            embeddings = self.backend.run(x)
            model_ms = (time.perf_counter() - start) * 1000.0
            for p, result in zip(good, self._score(embeddings, good, model_ms)):
                by_id[id(p)] = result
            self._stats.add(batches=1)
        self._stats.add(images=len(prepared))
        thresholds = self.thresholds()
        return [by_id[id(p)] if isinstance(p, Prepared) else self._stamp(p, thresholds) for p in prepared]

    # -- submit ----------------------------------------------------------------------------------
    def _ensure_submitter(self) -> Submitter:
        with self._lock:
            # Checked under the lock close() takes: a submit() racing close() either makes the
            # submitter close() then stops, or sees the engine closing (no runner outlives it).
            if self._closing:
                raise EngineClosed("the engine is closed")
            if self._submitter is None:
                from radz_engine import _core

                batcher = _core.DynamicBatcher(
                    self.input_shape,
                    self.bundle.embedding_dim,
                    max_batch_size=self.max_batch_size,
                    max_delay_ms=self.max_delay_ms,
                    **self._batcher_options,
                )
                self._submitter = Submitter(batcher, self.backends, self.runners, self._score, self._stats)
            return self._submitter

    def submit(self, image: Any, priority: str = "routine", deadline_ms: float | None = None) -> Future:
        """Queue one image; returns a concurrent.futures.Future resolving to its Result.

        Decoding and preprocessing run in the calling thread. An unreadable image gives a
        Future already resolved to a Result with `error` set. Raises QueueFull (backpressure),
        ValueError for a bad priority, EngineClosed after close(). The Future raises
        DeadlineExceeded if `deadline_ms` passes before the image is batched; cancelling the
        Future cancels the request if it has not run yet.
        """
        self._check_open()
        if priority not in ("routine", "stat"):
            raise ValueError(f"priority: must be 'routine' or 'stat', got {priority!r}")
        prepared = prepare(image, self._preprocess_args)
        if isinstance(prepared, Result):
            future: Future = Future()
            future.set_result(self._stamp(prepared))
            self._stats.add(images=1, errors=1)
            return future
        return self._ensure_submitter().submit(prepared, priority, deadline_ms)

    # -- screen ----------------------------------------------------------------------------------
    def screen(
        self,
        paths: Any,
        progress: bool = True,
        workers: int | None = None,
        skip: Any = (),
        batch_size: int | None = None,
        processes: bool = False,
        model_runners: int | None = None,
    ) -> Iterator[Result]:
        """Stream Results over files, folders (recursive, found by content) and CSV lists (a
        `path` column): decoding and preprocessing in parallel workers (threads; spawned
        processes with `processes=True`, which needs the `if __name__ == "__main__":` guard in
        scripts), the model here in batches. Per-file errors are Results with `error` set.
        `workers`: decode workers (None: from the thread budget, docs/RUNTIME.md; 0: in this
        thread). `skip`: sources to leave out (resuming). `model_runners`: batches in the model at
        once (None: runtime.screen.default_model_runners)."""
        from radz_engine.runtime.screen import screen_paths

        self._check_open()
        if model_runners is not None and int(model_runners) < 1:
            raise ValueError(f"model_runners: must be >= 1, got {model_runners!r}")
        kwargs = {"processes": True} if processes else {}
        return screen_paths(
            self,
            paths,
            progress=progress,
            workers=workers,
            skip=skip,
            batch_size=batch_size,
            model_runners=model_runners,
            **kwargs,
        )

    # -- classes ---------------------------------------------------------------------------------
    def add_classes(self, classes: dict[str, str]) -> list[str]:
        """Add (or replace) zero-shot classes from text: {"name": "knowledge description"}.

        The description becomes the class's anchor; "This is a chest X-ray showing {name}" and
        "{name}" / "no {name}" (the bundle's templates) its softmax and posneg prompts. Runs the
        bundle's tokenizer + text_encoder.onnx (no torch). Returns the class names now scored.
        """
        if not isinstance(classes, dict) or not classes:
            raise ValueError("classes: need a non-empty {name: knowledge description} dict")
        for name, text in classes.items():
            if not isinstance(name, str) or not name.strip() or not isinstance(text, str) or not text.strip():
                raise ValueError(f"classes: names and descriptions must be non-empty strings, got {name!r}: {text!r}")
        encoder = self._get_text_encoder()
        names = [n.strip() for n in classes]
        display = [n.replace("_", " ").strip().lower() for n in names]
        prompts = [encoder.class_prompts(d) for d in display]
        anchors = encoder.encode([classes[n] for n in classes])
        softmax = encoder.encode([p["softmax"] for p in prompts])
        positive = encoder.encode([p["posneg_positive"] for p in prompts])
        negative = encoder.encode([p["posneg_negative"] for p in prompts])
        self.scorer.add(names, softmax, positive, negative, anchors)
        log.info("radz_engine: classes added: %s", names)
        return self.class_names

    # -- similar cases -------------------------------------------------------------------------
    def attach_index(self, index: Any, k: int = 3) -> None:
        """Attach a similar-case index (a folder or an opened SimilarIndex; None detaches):
        every Result from classify, submit and screen then carries its k nearest indexed cases
        in `Result.neighbours`. An index built with another bundle is refused (SimilarIndexError)."""
        if index is None:
            self._similar = None
            return
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"neighbours: must be an integer >= 1, got {k!r}")
        index = self._open_index(index)
        self._similar = (index, int(k))
        log.info("radz_engine: similar-case index %s attached (%d neighbours per result)", index.path, k)

    def _open_index(self, index: Any):
        """An opened, bundle-checked index; a folder is opened (and its files hashed) once per
        version of its manifest, not at every similar() call."""
        from radz_engine.retrieval.index import MANIFEST, SimilarIndex, open_index

        if not isinstance(index, SimilarIndex):
            folder = Path(index).resolve()
            try:
                stamp = (folder / MANIFEST).stat().st_mtime_ns
            except OSError:
                stamp = None
            cached = self._opened_indexes.get(folder)
            if cached is not None and stamp is not None and cached[0] == stamp:
                index = cached[1]
            else:
                index = open_index(folder)
                if stamp is not None:
                    self._opened_indexes = {folder: (stamp, index)}  # keep the latest one only
        index.check_bundle(self.model_info)
        return index

    def similar(self, image: Any, k: int = 10, index: Any = None) -> list:
        """The k indexed images most similar to `image` (anything classify() takes, one image),
        best first: a list of radz_engine.retrieval.Neighbour (source, similarity, distance,
        findings). index: a folder or SimilarIndex (default: the attached one). Raises
        RadzInputError for an unreadable image, SimilarIndexError for a bad index or k."""
        from radz_engine.errors import RadzInputError, SimilarIndexError

        if index is None:
            if self._similar is None:
                raise SimilarIndexError("index", "no index given and none attached (Engine(similar_index=...))")
            index = self._similar[0]
        else:
            index = self._open_index(index)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise SimilarIndexError("k", f"must be an integer >= 1, got {k!r}")
        if not is_single_image(image):
            raise ValueError("image: similar() takes one image; call it per image, or use radz similar for many")
        result = self.classify(image)[0]
        if not result.ok:
            raise RadzInputError(result.source, (result.error or "unreadable").removeprefix(f"{result.source}: "))
        return index.search(result.embedding, k)[0]

    def remove_class(self, name: str) -> None:
        self.scorer.remove(name)

    def _get_text_encoder(self):
        with self._lock:
            if self._text_encoder is None:
                import onnxruntime as ort

                from radz_engine.runtime.text_encoder import TextEncoder

                options = ort.SessionOptions()
                if self.threads:
                    options.intra_op_num_threads = self.threads
                self._text_encoder = TextEncoder(self.bundle, session_options=options)
            return self._text_encoder

    # -- stats and lifetime ----------------------------------------------------------------------
    def stats(self) -> Stats:
        """Throughput, submit() latency percentiles (end to end, ms), queue depth, batcher metrics:
        a `radz_engine.runtime.stats.Stats` (see its fields; `stats["latency_ms"]` works too,
        `stats.latency_histogram()` gives the raw latency histogram)."""
        metrics = self._submitter.metrics if self._submitter is not None else {}
        return Stats(
            backend=self.backend.describe(),
            scoring=self.scorer.backend,
            classes=len(self.class_names),
            devices=[b.device for b in self.backends],
            runners=self.runners,
            queue_depth=int(metrics.get("queue_depth", 0)),
            batcher_metrics=metrics,
            **self._stats.snapshot(with_latencies=True),
        )

    def close(self, drain: bool = True) -> None:
        """Stop accepting work; drain (run) or cancel queued requests; stop runners. Idempotent."""
        with self._lock:
            if self._closed or self._closing:
                return
            self._closing = True
            submitter = self._submitter
        if submitter is not None:
            submitter.close(drain)
        for backend in self.backends:
            backend.close()
        self._closed = True

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Engine(bundle={str(self.bundle.path)!r}, backend={self.backend.name!r}, device={self.backend.device!r}, "
            f"classes={len(self.class_names)})"
        )
