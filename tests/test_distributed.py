"""radz_engine.distributed / `radz screen --ray`: Ray Data screening on a real local Ray cluster.

The cluster is started by this module (ray.init: 127.0.0.1 only, 2 CPUs, its own temp folder,
token auth with a token held in the environment, no usage stats) and stopped by ray.shutdown().
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from blocked_imports import HEAVY, run_blocked

pytest.importorskip("onnxruntime")

pytestmark = [
    # Ray Data's DataContext() constructor itself assigns fields that Ray deprecated
    # (`use_push_based_shuffle`, `use_polars`, ...); the warning comes from ray.data.context,
    # not from our calls.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context"),
]

N_DICOMS = 300


@pytest.fixture(scope="module")
def dicom_folder(tmp_path_factory):
    """N_DICOMS phantom DICOMs (128 x 128, as in test_screen.py) in two series, plus two corrupt
    .dcm files (truncated header, random bytes) that must come back as error rows."""
    from radz_train.data.dicom_out import write_case
    from radz_train.data.phantom import generate_cases

    root = tmp_path_factory.mktemp("ray_screen") / "studies"
    for i, case in enumerate(generate_cases(N_DICOMS, seed=21, size=128)):
        folder = root / f"series_{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        write_case(case, folder / f"{case.index:04d}.dcm")
    (root / "series_0" / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    (root / "series_1" / "noise.dcm").write_bytes(np.random.default_rng(0).bytes(4096))
    return root


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster on 127.0.0.1 with 2 CPUs and its own temp dir; yields its GCS address."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    import secrets

    from ray._private import ray_constants

    assert not ray.is_initialized(), "another test left Ray initialised"
    # A short path: Ray's Unix sockets live under it (108-byte limit).
    temp_dir = tempfile.mkdtemp(prefix="rz_ray_")
    with pytest.MonkeyPatch.context() as mp:
        # Bind to loopback: Ray otherwise resolves 127.0.0.1 to the host's routable address.
        mp.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        mp.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
        # Token auth with the token in the environment (Ray turns auth on when it finds one), so
        # nothing is written to ~/.ray; child processes and a second driver inherit it.
        mp.delenv("RAY_AUTH_MODE", raising=False)
        mp.setenv("RAY_AUTH_TOKEN", secrets.token_hex(16))
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        try:
            ray.init(
                num_cpus=2,
                _temp_dir=temp_dir,
                include_dashboard=False,
                object_store_memory=300 * 2**20,
                log_to_driver=False,
            )
            address = ray.get_runtime_context().gcs_address
            assert address.startswith("127.0.0.1:"), address
            yield address
        finally:
            ray.shutdown()
            shutil.rmtree(temp_dir, ignore_errors=True)


def _table(out):
    import pyarrow.parquet as pq

    return pq.read_table(out)


def _rows(out) -> dict:
    rows = _table(out).to_pylist()
    sources = [r["source"] for r in rows]
    assert len(sources) == len(set(sources)), "a file has more than one result row"
    return {r["source"]: r for r in rows}


def test_screen_dataset_one_row_per_file_scores_match_engine_and_resumes(ray_cluster, dicom_folder, tmp_path):
    from radz_engine.distributed import screen_dataset
    from radz_engine.distributed.sources import list_sources
    from radz_engine.runtime.engine import Engine
    from radz_engine.runtime.results import Result

    sources = list_sources(dicom_folder)
    assert len(sources) == N_DICOMS + 2
    out = tmp_path / "results"
    summary = screen_dataset([dicom_folder], out, batch_size=16, rows_per_file=64)
    assert (summary["files"], summary["ok"], summary["failed"], summary["skipped"]) == (N_DICOMS + 2, N_DICOMS, 2, 0)
    assert summary["device"] == "cpu" and summary["actors"] == 2  # 2 CPUs, 1 thread each, no GPU
    rows = _rows(out)
    assert sorted(rows) == sorted(sources)  # every file exactly once, nothing lost, nothing extra
    card = json.loads((out / "_radz_card.json").read_text())  # the model card beside the part files
    assert card["intended_use"] == "research" and "research use only" in card["notice"].lower()

    with Engine(threads=1, max_batch_size=32) as engine:
        reference = {r.source: r for r in engine.classify(sources)}
        classes = engine.class_names
    # The same columns, in the same order, as `radz screen` rows.
    assert _table(out).column_names == list(Result(source="").to_row(classes))
    for name in ("broken.dcm", "noise.dcm"):
        bad = next(r for s, r in rows.items() if s.endswith(name))
        assert bad["ok"] is False and name in bad["error"] and bad["score_edema"] is None
    for source, row in rows.items():
        expected = reference[source]
        assert row["ok"] == expected.ok, (source, row["error"], expected.error)
        if expected.ok:
            np.testing.assert_allclose(
                [row[f"score_{c}"] for c in classes], [expected.scores[c] for c in classes], atol=1e-5, err_msg=source
            )
            assert row["positives"] == ";".join(expected.positives)
            assert row["sop_instance_uid"] == expected.metadata["SOPInstanceUID"]
    positives = sum(len(r.positives) for r in reference.values())
    assert sum(summary["positives"].values()) == positives and set(summary["positives"]) == set(classes)

    # Rerun: everything is skipped, nothing is written.
    parts = sorted(p.name for p in out.glob("*.parquet"))
    assert len(parts) >= 2
    again = screen_dataset([dicom_folder], out, batch_size=16)
    assert (again["files"], again["skipped"]) == (0, N_DICOMS + 2)
    assert sorted(p.name for p in out.glob("*.parquet")) == parts

    # An interrupted run: one part file lost and one cut short -> only their files are redone.
    lost = set(_rows(out / parts[0]))
    (out / parts[0]).unlink()
    cut = out / parts[1]
    lost |= set(_rows(cut))
    cut.write_bytes(cut.read_bytes()[:100])
    resumed = screen_dataset([dicom_folder], out, batch_size=16)
    assert resumed["files"] == len(lost) and resumed["skipped"] == N_DICOMS + 2 - len(lost)
    assert (out / f"_unreadable_{parts[1]}").exists()  # kept aside, ignored by Parquet readers
    assert sorted(_rows(out)) == sorted(sources)


def test_screen_cli_ray_uri_inputs_and_missing_files(ray_cluster, dicom_folder, tmp_path, capsys):
    from radz_engine.cli.screen import main as screen_main

    files = sorted((dicom_folder / "series_1").glob("*.dcm"))[:5]
    listing = tmp_path / "list.csv"
    with listing.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path"])
        writer.writerows([[str(f)] for f in files[:3]] + [["missing.dcm"]])
    out = tmp_path / "cli.parquet"
    # `--ray` before the paths: argparse gives it the listing, which goes back to the paths.
    args = [
        "--out",
        str(out),
        "--threads",
        "1",
        "--batch-size",
        "4",
        "--embeddings",
        "--no-progress",
        "--ray",
        str(listing),
        f"file://{files[3]}",
        f"file://{files[4].parent}/absent.dcm",
    ]
    assert screen_main(args) == 0
    captured = capsys.readouterr()
    assert "| 6 | 4 | 2 | 0 |" in captured.out, captured.out + captured.err
    rows = _rows(out)
    assert len(rows) == 6 and rows[f"file://{files[3]}"]["ok"] is True
    assert all(len(r["embedding"]) == 128 if r["ok"] else r["embedding"] is None for r in rows.values())
    assert "absent.dcm" in rows[f"file://{files[4].parent}/absent.dcm"]["error"]
    assert rows[str(tmp_path / "missing.dcm")]["ok"] is False
    assert screen_main([*args, "--no-retry-failed"]) == 0
    assert "| 0 | 0 | 0 | 6 |" in capsys.readouterr().out
    assert screen_main(args) == 0  # the two failed files retried (failing again); the other four were fine
    captured = capsys.readouterr()
    assert "| 2 | 0 | 2 | 4 |" in captured.out and "2 of 2 files failed" in captured.err
    assert len(_rows(out)) == 6 and _table(out).num_rows == 6  # their old rows replaced, one row per file


def test_screen_cli_ray_rejects_file_outputs(tmp_path, capsys):
    from radz_engine.cli.screen import main as screen_main

    assert screen_main([str(tmp_path), "--out", str(tmp_path / "r.csv"), "--ray"]) == 2
    assert "Parquet dataset folder" in capsys.readouterr().err


def test_ray_address_or_path():
    from radz_engine.cli.screen import _ray_address, build_parser

    for value, address, paths in [
        ("", None, ["a"]),
        ("auto", "auto", ["a"]),
        ("10.0.0.1:6379", "10.0.0.1:6379", ["a"]),
        ("ray://head:10001", "ray://head:10001", ["a"]),
        ("data/", None, ["data/", "a"]),
    ]:
        argv = ["a", "--out", "r/", f"--ray={value}" if value else "--ray"]
        args = build_parser().parse_args(argv)
        assert _ray_address(args) == address and args.paths == paths


def test_plan_actors():
    from radz_engine.distributed.pipeline import plan_actors

    gpu = plan_actors({"CPU": 64.0, "GPU": 8.0}, "auto", None, None)
    assert (gpu["device"], gpu["actors"], gpu["num_gpus"]) == ("cuda", 8, 1)
    cpu = plan_actors({"CPU": 16.0}, "auto", None, 4)
    assert (cpu["device"], cpu["actors"], cpu["num_cpus"], cpu["threads"]) == ("cpu", 4, 4, 4)
    assert cpu["decode_cpus"] == cpu["num_cpus"] and gpu["decode_cpus"] == 1  # CPU: fused into the actors
    assert plan_actors({"CPU": 64.0, "GPU": 8.0}, "cpu", 3, None)["actors"] == 3
    assert plan_actors({"CPU": 8.0, "GPU": 8.0}, "auto", None, None)["num_cpus"] == 0  # leave the CPUs to decoding
    with pytest.raises(ValueError, match="no GPUs"):
        plan_actors({"CPU": 4.0}, "cuda", None, None)


def test_without_ray_a_clear_message(tmp_path):
    result = run_blocked(
        f"""
        from radz_engine.distributed import screen_dataset
        try:
            screen_dataset([{str(tmp_path)!r}], {str(tmp_path / "out")!r})
        except ImportError as error:
            print("API:", error)
        from radz_engine.cli.screen import main
        assert main([{str(tmp_path)!r}, "--out", {str(tmp_path / "out")!r}, "--ray"]) == 2
        """,
        blocked=HEAVY + ("ray",),
    )
    assert result.returncode == 0, result.stderr
    assert "API:" in result.stdout and "pip install 'radz-engine[scale]'" in result.stdout
    assert "pip install 'radz-engine[scale]'" in result.stderr


@pytest.mark.slow
def test_screen_cli_connects_to_the_cluster_by_address(ray_cluster, dicom_folder, tmp_path):
    """A second driver process joins the test's cluster through `--ray=127.0.0.1:PORT`."""
    out = tmp_path / "by_address"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "radz_engine.cli",
        "screen",
        str(dicom_folder / "series_0"),
        "--out",
        str(out),
        "--threads",
        "1",
        "--no-progress",
        f"--ray={ray_cluster}",
    ]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(_rows(out)) == N_DICOMS // 2 + 1
