"""Scale-out batch screening on Ray Data (`radz screen --ray`): many machines, many GPUs.

    from radz_engine.distributed import screen_dataset
    summary = screen_dataset(["s3://archive/cxr/", "/mnt/pacs/list.csv"], "s3://results/cxr_screen/",
                             address="auto")

Pipeline: list the files (local paths, folders, CSV lists, or any URI pyarrow.fs reads) ->
decode + preprocess in CPU tasks -> `map_batches` over a pool of stateful engine actors (one per
GPU with num_gpus=1; CPU actors otherwise) -> a Parquet dataset folder (one part file per write
task) with the columns of `radz screen`; a bad file is a row with `error` set. Resumable: files
already in the output folder are skipped. Ray is optional: pip install 'radz-engine[scale]'.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections import Counter

__all__ = ["screen_dataset", "RAY_HINT"]

log = logging.getLogger(__name__)
RAY_HINT = "pip install 'radz-engine[scale]'"


def _require_ray():
    try:
        import pyarrow  # noqa: F401
        import ray
        import ray.data
    except ImportError as error:
        raise ImportError(f"screening on Ray needs Ray Data and pyarrow ({error}): {RAY_HINT}") from error
    return ray


def screen_dataset(
    paths,
    out,
    *,
    bundle=None,
    address: str | None = None,
    device: str = "auto",
    actors: int | None = None,
    threads: int | None = None,
    batch_size: int = 32,
    backend: str = "auto",
    add_classes: dict | None = None,
    embeddings: bool = False,
    resume: bool = True,
    retry_failed: bool = False,
    decode_batch_size: int = 16,
    rows_per_file: int = 1000,
    progress: bool = False,
    ray_init_kwargs: dict | None = None,
) -> dict:
    """Screen every file under `paths` on a Ray cluster; results go to the Parquet dataset `out`.

    Args:
        paths: files, folders (recursive), CSV lists with a `path` column, or URIs of any
            pyarrow filesystem (s3://, gs://, hdfs://, file://); local paths must be visible at
            the same place on every node (they are made absolute).
        out: the result folder (local or URI), one row per file with `radz screen`'s columns.
        bundle: a bundle folder present on every node (default: the shipped default bundle).
        address: Ray cluster ("auto", "ray://head:10001", "head:6379"; None: RAY_ADDRESS or a
            cluster started with `ray start` on this machine, else a new local one). If Ray is
            already initialised in this process, that connection is used.
        device: "auto" (GPUs if the cluster has any), "cuda" or "cpu".
        actors: engine actors (default: one per GPU, or cluster CPUs / threads).
        threads: intra-op threads per CPU actor (and its num_cpus; default 1).
        batch_size: model batch per actor call; decode_batch_size: files per decode task call.
        resume: skip files already in `out` (False: screen them again; rows are appended).
        retry_failed: when resuming, screen again the files whose rows failed (their old rows
            are removed from `out` first; `radz screen --ray` does this unless --no-retry-failed).
        rows_per_file: rows gathered per Parquet part file (smaller: finer-grained resume).
        ray_init_kwargs: passed to ray.init (e.g. num_cpus, _temp_dir) when this call connects.

    Returns the summary of `radz screen` (files, ok, failed, skipped, seconds, images_per_s,
    positives, model) plus "out", "actors", "device" and "retried".
    Raises ImportError naming `pip install 'radz-engine[scale]'` when Ray is missing.
    """
    ray = _require_ray()
    from radz_engine.bundle.loader import load_bundle
    from radz_engine.distributed.pipeline import EngineActor, decode_batch, plan_actors, write_options
    from radz_engine.distributed.sources import done_sources_in, list_sources
    from radz_engine.runtime.screen_output import format_summary, summarize

    if int(batch_size) < 1 or int(decode_batch_size) < 1:
        raise ValueError(f"batch_size and decode_batch_size must be >= 1, got {batch_size}, {decode_batch_size}")
    out = str(out) if "://" in str(out) else os.path.abspath(out)
    if bundle is None:
        from radz_engine.bundle.default import default_bundle_path

        bundle = default_bundle_path()
    bundle = os.path.abspath(bundle)
    # Hashes checked here, before any cluster work; the ONNX sessions only in the actors.
    loaded = load_bundle(bundle, check_onnx=False)
    args = loaded.preprocess_args()

    start = time.perf_counter()
    identity = loaded.identity()
    if resume:
        from radz_engine.distributed.sources import dataset_models

        others = dataset_models(out) - {identity["hash"]}
        if others:
            raise ValueError(
                f"--out {out} holds results of another bundle (hash {', '.join(sorted(h or '?' for h in others))}), "
                f"this run uses {identity['name']} {identity['version']} (hash {identity['hash']}); "
                "write to a new folder"
            )
    retried = 0
    if resume and retry_failed:
        from radz_engine.distributed.sources import drop_failed_in

        retried = drop_failed_in(out)
        if retried:
            log.info("radz_engine.distributed: retrying %d files that failed before", retried)
    skip = done_sources_in(out) if resume else set()
    listed = list_sources(paths)
    sources = [s for s in listed if s not in skip]
    skipped = len(listed) - len(sources)
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)  # names this run's part files

    owned = not ray.is_initialized()
    if owned:
        ray.init(address=address, **dict(ray_init_kwargs or {}))
    try:
        plan = plan_actors(ray.cluster_resources(), device, actors, threads)
        log.info(
            "radz_engine.distributed: %d files (%d already done), %d %s actors",
            len(sources),
            skipped,
            plan["actors"],
            plan["device"],
        )
        if sources:
            import ray.data

            ray.data.DataContext.get_current().enable_progress_bars = bool(progress)
            engine_kwargs = {
                "bundle_path": bundle,
                "backend": backend,
                "device": plan["device"],
                "max_batch_size": int(batch_size),
                "threads": plan["threads"],
            }
            ds = ray.data.from_items([{"source": s} for s in sources])
            ds = ds.map_batches(
                decode_batch,
                batch_size=int(decode_batch_size),
                batch_format="numpy",
                fn_kwargs={"args": args},
                num_cpus=plan["decode_cpus"],
            )
            ds = ds.map_batches(
                EngineActor,
                batch_size=int(batch_size),
                batch_format="numpy",
                fn_constructor_kwargs={
                    "engine_kwargs": engine_kwargs,
                    "add_classes": add_classes,
                    "embeddings": bool(embeddings),
                },
                compute=ray.data.ActorPoolStrategy(size=plan["actors"]),
                num_cpus=plan["num_cpus"],
                num_gpus=plan["num_gpus"],
            )
            from ray.data.datasource import FilenameProvider

            ds.write_parquet(
                out, filename_provider=FilenameProvider(f"radz-{run_id}", "parquet"), **write_options(rows_per_file)
            )
    finally:
        if owned:
            ray.shutdown()
    seconds = time.perf_counter() - start
    _write_card(out, loaded.card())

    summary = summarize(_count(out, f"radz-{run_id}_"), seconds, identity)
    summary.update(
        {"skipped": skipped, "out": out, "actors": plan["actors"], "device": plan["device"], "retried": retried}
    )
    log.info("radz_engine.distributed:\n%s", format_summary(summary))
    return summary


CARD_FILE = "_radz_card.json"  # '_': dataset readers skip it, as they skip Ray's own files


def _write_card(out: str, card: dict) -> None:
    """The model card and its notice beside the part files (radz screen's .card.json sidecar)."""
    import json
    import posixpath

    from pyarrow import fs

    from radz_engine.distributed.sources import _from_uri, is_uri
    from radz_engine.runtime.screen_output import card_document

    out = str(out)
    filesystem, inner = _from_uri(out)[:2] if is_uri(out) else (fs.LocalFileSystem(), os.path.abspath(out))
    filesystem.create_dir(inner, recursive=True)
    with filesystem.open_output_stream(posixpath.join(inner, CARD_FILE)) as handle:
        handle.write((json.dumps(card_document(card), indent=2) + "\n").encode())


def _count(out: str, prefix: str) -> dict:
    """ok / failed / positives per class of this run's rows (its part files start with `prefix`)."""
    import posixpath

    import pyarrow.parquet as pq

    from radz_engine.distributed.sources import result_files

    filesystem, files = result_files(out)
    seen = {"ok": 0, "failed": 0, "positives": Counter()}
    for path in files:
        if not posixpath.basename(path).startswith(prefix):
            continue
        table = pq.read_table(path, columns=["ok", "positives"], filesystem=filesystem)
        for name in pq.read_schema(
            path, filesystem=filesystem
        ).names:  # every class, even with no positives (as radz screen)
            if name.startswith("score_") and name != "score_ms":
                seen["positives"].setdefault(name[len("score_") :], 0)
        ok = table.column("ok").to_pylist()
        seen["ok"] += sum(ok)
        seen["failed"] += len(ok) - sum(ok)
        for good, positives in zip(ok, table.column("positives").to_pylist()):
            if good and positives:
                seen["positives"].update(positives.split(";"))
    return seen
