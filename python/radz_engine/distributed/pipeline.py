"""The Ray Data pipeline: sources -> decode + preprocess (CPU tasks) -> engine actors -> Parquet.

Each stage reuses the single-machine code: `prepare_file` (screen.py) decodes and preprocesses,
`screen.run_chunk` runs `Engine.run_prepared` on a batch (error Results pass through), and
`Result.to_row` makes the same columns as `radz screen` (the embedding: a fixed_size_list<float16>
column, runtime/embeddings.py).
Ray is imported by the caller (radz_engine.distributed), never at module import.
"""

from __future__ import annotations

import json

import numpy as np

from radz_engine.runtime.prepare import Prepared
from radz_engine.runtime.results import Result

__all__ = ["decode_batch", "EngineActor", "result_schema", "plan_actors"]


def decode_batch(batch: dict, args: dict) -> dict:
    """Ray Data UDF (CPU task): {"source"} -> {"source", "pixels" [B, 1, H, W] intensities,
    "error" ("" = ok), "metadata" (JSON), "decode_ms", "preprocess_ms"}. One channel crosses to
    the engine actors, not the model's three (they differ only by mean/std): the actor
    normalises. A bad file becomes an error, never a raise; its pixels are zeros (a tensor column
    needs one shape) and are never run."""
    from radz_engine.distributed.sources import prepare_source

    one_channel = {**args, "mean": (0.0,), "std": (1.0,)}
    prepared = [prepare_source(str(s), one_channel) for s in batch["source"]]
    height, width = args["out_size"]
    pixels = np.zeros((len(prepared), 1, height, width), np.float32)
    for i, p in enumerate(prepared):
        if isinstance(p, Prepared):
            pixels[i] = p.tensor
    ok = [isinstance(p, Prepared) for p in prepared]
    return {
        "source": np.array([p.source for p in prepared], dtype=object),
        "pixels": pixels,
        "error": np.array(["" if good else p.error for p, good in zip(prepared, ok)], dtype=object),
        "metadata": np.array([json.dumps(p.metadata, default=str) for p in prepared], dtype=object),
        "decode_ms": np.array([p.decode_ms if good else 0.0 for p, good in zip(prepared, ok)], np.float64),
        "preprocess_ms": np.array([p.preprocess_ms if good else 0.0 for p, good in zip(prepared, ok)], np.float64),
    }


def result_schema(classes, embeddings: bool, embedding_dim: int | None = None):
    """The Arrow schema of `radz screen`'s rows (screen_output.result_schema: Result.to_row's
    columns, + `embedding` fixed_size_list<float16>[D]), fixed so that every part file agrees even
    when a batch has only errors (all-null columns)."""
    from radz_engine.runtime.screen_output import result_schema as schema

    return schema(classes, embeddings, embedding_dim)


class EngineActor:
    """A stateful Ray Data UDF: one Engine per actor (one per GPU, or a CPU actor), loaded once."""

    def __init__(self, engine_kwargs: dict, add_classes: dict | None, embeddings: bool) -> None:
        from radz_engine.runtime.engine import Engine

        self.engine = Engine(**engine_kwargs)
        if add_classes:
            self.engine.add_classes(add_classes)
        self.classes = list(self.engine.class_names)
        self.args = self.engine.bundle.preprocess_args()
        self.embeddings = embeddings
        self.schema = result_schema(self.classes, embeddings, self.engine.bundle.embedding_dim)

    def __call__(self, batch: dict):
        import pyarrow as pa

        from radz_engine.runtime.screen import normalise, run_chunk

        mean, std = self.args["mean"], self.args["std"]
        chunk = [
            Result(source=str(s), error=e, metadata=json.loads(m))
            if e
            else normalise(Prepared(str(s), x, json.loads(m), float(d), float(p)), mean, std)
            for s, x, m, e, d, p in zip(
                batch["source"],
                batch["pixels"],
                batch["metadata"],
                batch["error"],
                batch["decode_ms"],
                batch["preprocess_ms"],
            )
        ]
        model, thresholds = self.engine.model_info, self.engine.thresholds()
        results = run_chunk(self.engine, chunk)
        rows = [r.to_row(self.classes, model=model, thresholds=thresholds) for r in results]
        if not self.embeddings:
            return pa.Table.from_pylist(rows, schema=self.schema)
        from radz_engine.runtime.embeddings import EMBEDDING_COLUMN, embedding_array

        field = self.schema.field(EMBEDDING_COLUMN)
        table = pa.Table.from_pylist(rows, schema=pa.schema([f for f in self.schema if f.name != EMBEDDING_COLUMN]))
        column = embedding_array([r.embedding for r in results], field.type.list_size).cast(field.type)
        return table.append_column(field, column)


def plan_actors(resources: dict, device: str, actors: int | None, threads: int | None) -> dict:
    """How many engine actors, on what: {"device", "actors", "num_gpus", "num_cpus", "threads",
    "decode_cpus" (what each decode task asks for)}.

    GPUs (device "auto" with GPUs in the cluster, or "cuda"): one actor per GPU, num_gpus=1, the
    engine on "cuda" (Ray sets CUDA_VISIBLE_DEVICES, so each actor sees its own GPU as cuda:0);
    decoding runs in separate CPU tasks. CPU: actors of `threads` CPUs each (default 1), as many
    as the cluster's CPUs allow; decode tasks ask for the same CPUs, so Ray fuses decoding into the
    actors: no preprocessed tensor crosses processes, and no decode task waits for a CPU that the
    actors hold (with different requests, decode tasks could wait for CPUs the actors never give back).
    """
    gpus = int(resources.get("GPU", 0))
    cpus = max(1, int(resources.get("CPU", 1)))
    if device in ("cuda", "gpu") or device.startswith("cuda:") or (device == "auto" and gpus > 0):
        if gpus == 0:
            raise ValueError(f"device {device!r}: the Ray cluster has no GPUs (resources: {resources})")
        if device.startswith("cuda:"):
            raise ValueError("device: with Ray, use 'cuda' (each actor gets its own GPU), not a device number")
        count = gpus if actors is None else int(actors)
        # A CPU each for the runner thread and scoring, unless that would leave none for decoding.
        actor_cpus = 1 if cpus >= 2 * count else 0
        return {
            "device": "cuda",
            "actors": count,
            "num_gpus": 1,
            "num_cpus": actor_cpus,
            "threads": threads,
            "decode_cpus": 1,
        }
    threads_each = max(1, int(threads or 1))
    count = max(1, cpus // threads_each) if actors is None else int(actors)
    return {
        "device": "cpu",
        "actors": count,
        "num_gpus": 0,
        "num_cpus": threads_each,
        "threads": threads_each,
        "decode_cpus": threads_each,
    }


def write_options(rows_per_file: int) -> dict:
    # Writes ask for no CPU: the engine actors may hold every CPU until the end, and a write
    # that waited for one would keep all results in memory (nothing on disk to resume from).
    from radz_engine.runtime.screen_output import PARQUET_WRITE_OPTIONS

    return {
        "min_rows_per_file": max(1, int(rows_per_file)),
        "ray_remote_args": {"num_cpus": 0},
        **PARQUET_WRITE_OPTIONS,
    }
