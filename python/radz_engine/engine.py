"""`Engine`: the runtime's front door (DESIGN.md section 4).

    eng = Engine("bundle/", backend="auto", device="cpu", max_batch_size=64, max_delay_ms=2)
    eng.classify(images)       -> list[Result]      bulk, in batches of max_batch_size
    eng.submit(image)          -> Future[Result]    low latency, thread-safe, dynamic batching
    eng.screen(paths)          -> iterator[Result]  files / folders / CSVs, process-pool decoding
    eng.add_classes({...})     zero-shot classes from text (tokenizer + text_encoder.onnx)
    eng.stats()                throughput, latency percentiles, queue depth

`submit` path: decode + preprocess in the caller's thread -> the C++ `_core.DynamicBatcher`
-> runner threads pop batches (GIL released while waiting), run the backend, score, and resolve
the caller's `concurrent.futures.Future`. With several devices (`device=["cuda:0", "cuda:1"]`)
each has its own backend replica and runner threads, all popping from the one queue.
Never imports torch (the torch backend imports it lazily).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from concurrent.futures import Future, InvalidStateError
from pathlib import Path

import numpy as np

from .backends import create_backend
from .bundle import load_bundle
from .class_scorer import ClassScorer
from .errors import RadzInputError
from .inputs import Decoded, decode, is_single_image, source_name
from .results import Result

__all__ = ["Engine", "EngineClosed"]

log = logging.getLogger(__name__)
_POLL_MS = 50  # how often idle runners look for expired requests and shutdown
_NO_PIXELS = np.zeros((1, 1), np.uint8)


class EngineClosed(RuntimeError):
    """submit() / classify() after close()."""


class _Pending:
    __slots__ = ("future", "ticket", "decoded", "timings", "submitted", "deadline")

    def __init__(self, future, ticket, decoded, timings, submitted, deadline):
        self.future, self.ticket, self.decoded = future, ticket, decoded
        self.timings, self.submitted, self.deadline = timings, submitted, deadline


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
    """

    def __init__(self, bundle_path=None, backend="auto", device: str | list[str] = "cpu", max_batch_size: int = 64,
                 max_delay_ms: float = 2.0, threads: int | None = None, runners: int = 1, *, mode: str | None = None,
                 threshold: float = 0.5, max_queue: int = 1024, backpressure: str = "block",
                 block_timeout_ms: float = 1000.0, adaptive_delay: bool = True, backend_options: dict | None = None,
                 verify_hashes: bool = True) -> None:
        if int(max_batch_size) < 1:
            raise ValueError(f"max_batch_size: must be >= 1, got {max_batch_size!r}")
        if int(runners) < 1:
            raise ValueError(f"runners: must be >= 1, got {runners!r}")
        if float(max_delay_ms) < 0:
            raise ValueError(f"max_delay_ms: must be >= 0, got {max_delay_ms!r}")
        if threads is not None and int(threads) < 1:
            raise ValueError(f"threads: must be >= 1 or None, got {threads!r}")
        if bundle_path is None:
            from .default_bundle import default_bundle_path

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
        self._batcher_options = {"max_queue": int(max_queue), "backpressure": backpressure,
                                 "block_timeout_ms": float(block_timeout_ms), "adaptive_delay": bool(adaptive_delay)}
        self.backends = []
        try:
            for d in devices:
                self.backends.append(create_backend(backend, self.bundle, d, threads=self.threads,
                                                    max_batch_size=self.max_batch_size, **dict(backend_options or {})))
        except BaseException:  # a device that fails must not leave the others' sessions open
            for made in self.backends:
                made.close()
            raise
        self.backend = self.backends[0]
        self.scorer = ClassScorer(self.bundle, mode=mode, threshold=threshold)
        spec = self.bundle.input_spec
        self.input_shape = (int(spec["channels"]), int(spec["size"][0]), int(spec["size"][1]))
        self._preprocess_args = self.bundle.preprocess_args()
        self._text_encoder = None
        self._lock = threading.Lock()
        self._batcher = None
        self._runner_threads: list[threading.Thread] = []
        self._pending: dict[int, _Pending] = {}
        self._early: dict[int, tuple] = {}  # runner finished before submit() registered the ticket
        self._closing = False
        self._closed = False
        self._latencies = collections.deque(maxlen=20000)
        self._counts = {"images": 0, "errors": 0, "batches": 0}
        self._started = time.perf_counter()
        log.info("radz_engine: bundle %s, backend %s on %s, scoring %s (%s)", self.bundle.path, self.backend.name,
                 ", ".join(b.device for b in self.backends), self.scorer.mode, self.scorer.backend)

    # -- properties ------------------------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        return self.scorer.class_names

    # -- shared stages ---------------------------------------------------------------------------
    def preprocess(self, decoded: list[Decoded]) -> np.ndarray:
        """Decoded images -> [B, 3, H, W] float32 with the bundle's input spec (C++ core)."""
        from .preprocessing import preprocess_batch

        return preprocess_batch([d.pixels for d in decoded], [d.spec for d in decoded],
                                num_threads=self.threads, **self._preprocess_args)

    def _score_results(self, embeddings: np.ndarray, items: list[tuple[Decoded, dict]]) -> list[Result]:
        start = time.perf_counter()
        names, scores, positives = self.scorer.score(embeddings)
        score_ms = (time.perf_counter() - start) * 1000.0
        out = []
        for i, (d, timings) in enumerate(items):
            timings["score"] = score_ms
            out.append(Result(source=d.source, scores=dict(zip(names, scores[i].tolist())),
                              positives=[n for n, p in zip(names, positives[i]) if p],
                              embedding=embeddings[i].astype(np.float32, copy=True), timings=timings,
                              metadata=d.metadata))
        return out

    def _check_open(self) -> None:
        if self._closing:
            raise EngineClosed("the engine is closed")

    # -- classify --------------------------------------------------------------------------------
    def classify(self, images) -> list[Result]:
        """Classify images (see radz_engine.inputs for what an image may be); one Result per
        input, in order. Unreadable inputs give a Result with `error` set, never an exception."""
        self._check_open()
        items = [images] if is_single_image(images) else list(images)
        if isinstance(images, np.ndarray) and images.ndim == 3:
            items = list(images)
        results: list[Result | None] = [None] * len(items)
        good: list[tuple[int, Decoded]] = []
        for i, item in enumerate(items):
            try:
                good.append((i, decode(item, i)))
            except RadzInputError as error:
                results[i] = Result(source=source_name(item, i), error=str(error))
            except (OSError, TypeError, ValueError) as error:
                results[i] = Result(source=source_name(item, i), error=f"{source_name(item, i)}: {error}")
        for start in range(0, len(good), self.max_batch_size):
            chunk = good[start : start + self.max_batch_size]
            for (i, _), result in zip(chunk, self._run_chunk([d for _, d in chunk])):
                results[i] = result
        with self._lock:
            self._counts["images"] += len(items)
            self._counts["errors"] += sum(1 for r in results if r.error)
        return results  # type: ignore[return-value]

    def _run_chunk(self, decoded: list[Decoded]) -> list[Result]:
        start = time.perf_counter()
        try:
            x = self.preprocess(decoded)
        except ValueError:
            return self._run_one_by_one(decoded)
        pre_ms = (time.perf_counter() - start) * 1000.0 / len(decoded)
        start = time.perf_counter()
        embeddings = self.backend.run(x)
        model_ms = (time.perf_counter() - start) * 1000.0
        with self._lock:
            self._counts["batches"] += 1
        items = [(d, {"decode": d.decode_ms, "preprocess": pre_ms, "queue": 0.0, "model": model_ms}) for d in decoded]
        return self._score_results(embeddings, items)

    def _run_one_by_one(self, decoded: list[Decoded]) -> list[Result]:
        """A batch whose preprocessing failed: find the bad image(s), run the rest."""
        out = []
        for d in decoded:
            try:
                self.preprocess([d])
            except ValueError as error:
                out.append(Result(source=d.source, error=f"{d.source}: cannot preprocess ({error})", metadata=d.metadata))
                continue
            out.extend(self._run_chunk([d]))
        return out

    # -- submit ----------------------------------------------------------------------------------
    def _ensure_runners(self):
        with self._lock:
            if self._batcher is not None:
                return self._batcher
            from . import _core

            self._batcher = _core.DynamicBatcher(self.input_shape, self.bundle.embedding_dim,
                                                 max_batch_size=self.max_batch_size, max_delay_ms=self.max_delay_ms,
                                                 **self._batcher_options)
            for n in range(self.runners):
                backend = self.backends[n % len(self.backends)]
                thread = threading.Thread(target=self._runner, args=(backend,), name=f"radz-runner-{n}", daemon=True)
                thread.start()
                self._runner_threads.append(thread)
            return self._batcher

    def submit(self, image, priority: str = "routine", deadline_ms: float | None = None) -> Future:
        """Queue one image; returns a concurrent.futures.Future resolving to its Result.

        Decoding and preprocessing run in the calling thread. An unreadable image gives a
        Future already resolved to a Result with `error` set. Raises the batcher's QueueFull
        (backpressure), ValueError for a bad priority, EngineClosed after close().
        The Future raises the batcher's DeadlineExceeded if `deadline_ms` passes before the
        image is batched; cancelling the Future cancels the request if it has not run yet.
        """
        self._check_open()
        if priority not in ("routine", "stat"):
            raise ValueError(f"priority: must be 'routine' or 'stat', got {priority!r}")
        future: Future = Future()
        try:
            decoded = decode(image)
            start = time.perf_counter()
            x = self.preprocess([decoded])[0]
            timings = {"decode": decoded.decode_ms, "preprocess": (time.perf_counter() - start) * 1000.0}
        except (RadzInputError, OSError, TypeError, ValueError) as error:
            name = source_name(image)
            message = str(error) if isinstance(error, RadzInputError) else f"{name}: {error}"
            future.set_result(Result(source=name, error=message))
            with self._lock:
                self._counts["images"] += 1
                self._counts["errors"] += 1
            return future
        batcher = self._ensure_runners()
        submitted = time.perf_counter()
        ticket = batcher.submit(x, priority=priority, deadline_ms=deadline_ms)
        future.add_done_callback(lambda f: ticket.cancel() if f.cancelled() else None)
        # Keep only what the Result needs: a queued request must not hold its full-size pixels.
        light = Decoded(_NO_PIXELS, None, decoded.source, decoded.metadata, decoded.decode_ms)
        pending = _Pending(future, ticket, light, timings, submitted, deadline_ms is not None)
        with self._lock:
            early = self._early.pop(ticket.id, None)
            if early is None:
                self._pending[ticket.id] = pending
        if early is not None:
            self._resolve(pending, *early)
        return future

    def _resolve(self, pending: _Pending, result: Result | None, error: BaseException | None) -> None:
        if pending.future.done():
            return
        try:
            if error is not None:
                pending.future.set_exception(error)
                return
            pending.future.set_result(result)
        except InvalidStateError:  # the caller cancelled it meanwhile
            return
        now = time.perf_counter()
        with self._lock:
            self._latencies.append((now, (now - pending.submitted) * 1000.0))
            self._counts["images"] += 1

    def _deliver(self, ticket_id: int, result: Result | None, error: BaseException | None) -> None:
        with self._lock:
            pending = self._pending.pop(ticket_id, None)
            if pending is None:
                self._early[ticket_id] = (result, error)
                return
        if result is not None:
            result.timings = {**pending.timings, **result.timings}
            result.metadata = pending.decoded.metadata
            result.source = pending.decoded.source
            result.timings["queue"] = max(0.0, result.timings.pop("_popped") - pending.submitted) * 1000.0
        self._resolve(pending, result, error)

    def _runner(self, backend) -> None:
        batcher = self._batcher
        while True:
            try:
                batch = batcher.next_batch(_POLL_MS)
            except Exception:  # a batcher that raises once shut down
                if self._closing:
                    return
                raise
            if batch is None:
                self._sweep()
                if self._closing:
                    return
                continue
            popped = time.perf_counter()
            ids = list(batch.ids)
            try:
                start = time.perf_counter()
                embeddings = backend.run(np.asarray(batch.inputs))
                model_ms = (time.perf_counter() - start) * 1000.0
                batcher.complete(batch, np.ascontiguousarray(embeddings, dtype=np.float32))
                blank = Decoded(_NO_PIXELS, None, "")
                results = self._score_results(embeddings, [(blank, {"model": model_ms, "_popped": popped}) for _ in ids])
            except Exception as error:  # a failing batch fails its requests, never the runner
                log.exception("radz_engine: batch of %d failed", len(ids))
                try:
                    batcher.fail(batch, f"{type(error).__name__}: {error}")
                except Exception:  # already completed
                    pass
                for ticket_id in ids:
                    self._deliver(ticket_id, None, RuntimeError(f"batch failed: {type(error).__name__}: {error}"))
                continue
            with self._lock:
                self._counts["batches"] += 1
            for ticket_id, result in zip(ids, results):
                self._deliver(ticket_id, result, None)
            self._sweep()

    def _sweep(self) -> None:
        """Requests the batcher finished without running (deadline passed, cancelled, shut
        down): take their exception from the ticket and put it on the Future."""
        with self._lock:
            if not self._pending:
                return
            finished = [(k, p) for k, p in self._pending.items() if (p.deadline or self._closing) and p.ticket.done()]
            for k, _ in finished:
                del self._pending[k]
        for _, pending in finished:
            try:
                pending.ticket.result(0)
                error: BaseException = RuntimeError("request finished without a result")
            except BaseException as exc:  # the batcher's DeadlineExceeded / cancel / shutdown error
                error = exc
            if pending.future.cancelled():
                continue
            self._resolve(pending, None, error)

    # -- screen ----------------------------------------------------------------------------------
    def screen(self, paths, progress: bool = True, workers: int | None = None, skip=(), batch_size: int | None = None):
        """Stream Results over files, folders (recursive) and CSV lists (a `path` column):
        decoding and preprocessing in a process pool, the model here in batches. Per-file errors
        are Results with `error` set. `skip`: sources to leave out (resuming)."""
        from .screen import screen_paths

        self._check_open()
        return screen_paths(self, paths, progress=progress, workers=workers, skip=skip, batch_size=batch_size)

    def run_preprocessed(self, x: np.ndarray, decoded: list[Decoded], timings: list[dict]) -> list[Result]:
        """Backend + scoring for an already preprocessed batch (used by screen)."""
        start = time.perf_counter()
        embeddings = self.backend.run(x)
        model_ms = (time.perf_counter() - start) * 1000.0
        for t in timings:
            t["model"] = model_ms
        with self._lock:
            self._counts["batches"] += 1
            self._counts["images"] += len(decoded)
        return self._score_results(embeddings, list(zip(decoded, timings)))

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

    def remove_class(self, name: str) -> None:
        self.scorer.remove(name)

    def _get_text_encoder(self):
        with self._lock:
            if self._text_encoder is None:
                import onnxruntime as ort

                from .text_encoder import TextEncoder

                options = ort.SessionOptions()
                if self.threads:
                    options.intra_op_num_threads = self.threads
                self._text_encoder = TextEncoder(self.bundle, session_options=options)
            return self._text_encoder

    # -- stats and lifetime ----------------------------------------------------------------------
    def stats(self) -> dict:
        """Throughput, submit() latency percentiles (end to end, ms), queue depth, batcher metrics."""
        now = time.perf_counter()
        with self._lock:
            recent = [lat for t, lat in self._latencies if now - t <= 60.0]
            counts = dict(self._counts)
            window = [t for t, _ in self._latencies if now - t <= 60.0]
        lat = np.array(recent) if recent else np.zeros(0)
        out = {"backend": self.backend.describe(), "scoring": self.scorer.backend, "classes": len(self.class_names),
               "devices": [b.device for b in self.backends], "runners": self.runners, **counts,
               "uptime_s": now - self._started,
               "submit_images_per_s_60s": (len(window) / max(1e-9, now - min(window))) if len(window) > 1 else 0.0,
               "latency_ms": {f"p{p}": (float(np.percentile(lat, p)) if lat.size else None) for p in (50, 90, 99)}}
        metrics = self._batcher.metrics() if self._batcher is not None else {}
        out["queue_depth"] = int(metrics.get("queue_depth", 0))
        out["batcher_metrics"] = metrics
        return out

    def close(self, drain: bool = True) -> None:
        """Stop accepting work; drain (run) or cancel queued requests; stop runners. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closing = True
        if self._batcher is not None:
            self._batcher.shutdown(drain=drain)
            for thread in self._runner_threads:
                thread.join(timeout=60)
            self._sweep()
            with self._lock:
                left = list(self._pending.values())
                self._pending.clear()
            for pending in left:
                self._resolve(pending, None, EngineClosed("the engine closed before the request ran"))
        for backend in self.backends:
            backend.close()
        self._closed = True

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Engine(bundle={str(self.bundle.path)!r}, backend={self.backend.name!r}, device={self.backend.device!r}, "
                f"classes={len(self.class_names)})")
