"""The runtime's GPU paths, end to end, on one device (issue 13 item 11): benchmarks/gpu_check.sh
runs it on a GPU machine; on the CPU it is the same check with --device cpu.

    python benchmarks/gpu_paths_check.py --device cuda:0 --carry build/gpu_carry --out out/gpu_check/paths

--carry is what scripts/prepare_gpu_carry.sh builds: a tiny bundle and the `radz train` checkpoint it
was exported from (the torch backend runs the checkpoint; the bundle's ONNX graph is not runnable by
torch), PNG and DICOM phantoms. Steps, each timed, each writing STEP.json to --out as it ends, the
next one running whatever the last one did:

  engine  Engine(backend="torch", device=DEVICE): classify a batch of 64 PNGs (images/s, warm) and
          the model alone on the preprocessed batch; 64 submits one at a time (latency p50/p99) and
          64 at once (same embeddings as classify); embeddings against the same checkpoint on the CPU
          through the torch backend (max abs diff), against the bundle's ONNX graph on ONNX Runtime
          when onnxruntime is importable, and bfloat16 weights on DEVICE (cosine to float32).
  screen  Engine.screen over a folder of --screen-images PNGs (the carried ones, repeated under new
          names) with the torch backend on DEVICE: every file a result, images/s.
  serve   `radz serve --backend torch --checkpoint C --device DEVICE` as a subprocess on loopback
          (temporary work dir, --keep-spool): the carried DICOM files by C-STORE (pynetdicom), then
          waits for each one's SR in the spool and its line in results.jsonl; checks the SR (Modality
          SR, references the instance sent, one finding per class, the model card's name and
          research notice), that the server logged the torch backend on DEVICE; stops it by its pid.

A step whose package is missing is skipped with the reason (pynetdicom for serve, ...). Exit
status: 0 when no step failed, 1 otherwise. out/summary.json and out/paths.md gather the steps.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("engine", "screen", "serve")


class Skip(Exception):
    """A step that cannot run here (a package is missing): skipped with the reason, not failed."""


class CheckFailed(Exception):
    """A step ran and something it checks did not hold."""


def _need(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise Skip(f"not importable: {', '.join(missing)}")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def _percentiles(values_ms: list[float]) -> dict:
    a = np.asarray(values_ms, dtype=np.float64)
    return {"p50": round(float(np.percentile(a, 50)), 3), "p99": round(float(np.percentile(a, 99)), 3)}


def _expected_device(device: str) -> str:
    """The device the torch backend reports for --device (cuda means cuda:0)."""
    return "cuda:0" if device == "cuda" else device


LOADER_BUG = (
    "radz_engine/bundle/loader.py: load_bundle() opens every ONNX file with ONNX Runtime (_check_onnx_io, "
    "check_onnx=True by default, and Engine.__init__ does not pass it), so Engine(backend='torch') and "
    "radz serve --backend torch fail without onnxruntime"
)
WORKAROUND_PATCH = "import radz_engine.bundle.loader as _l; _l._check_onnx_io = lambda path, manifest: None"


def loader_needs_onnxruntime(bundle: Path) -> bool:
    """True when loading the bundle fails only because onnxruntime is missing (LOADER_BUG)."""
    from radz_engine.bundle.loader import load_bundle

    try:
        load_bundle(bundle, verify_hashes=False)
    except ModuleNotFoundError as error:
        if error.name == "onnxruntime":
            return True
        raise
    return False


class Carry:
    """The folder scripts/prepare_gpu_carry.sh writes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.bundle = self.root / "model" / "bundle"
        self.checkpoint = self.root / "model" / "checkpoint"
        self.pngs = sorted((self.root / "images" / "png").rglob("*.png"))
        self.dicoms = sorted((self.root / "images" / "dicom").rglob("*.dcm"))
        for path, what in ((self.bundle, "model/bundle"), (self.checkpoint, "model/checkpoint")):
            if not path.is_dir():
                raise SystemExit(f"--carry {self.root}: no {what} (run scripts/prepare_gpu_carry.sh)")
        if not self.pngs:
            raise SystemExit(f"--carry {self.root}: no images/png/*.png (run scripts/prepare_gpu_carry.sh)")


# -- engine ---------------------------------------------------------------------------------------
def step_engine(args, carry: Carry) -> dict:
    _need("torch", "transformers", "tokenizers", "safetensors", "PIL")
    from radz_engine.runtime.engine import Engine

    images = [str(carry.pngs[i % len(carry.pngs)]) for i in range(64)]
    options = {"checkpoint": str(carry.checkpoint)}
    out: dict = {"device": args.device, "images": len(images)}
    t0 = time.perf_counter()
    with Engine(
        carry.bundle, backend="torch", device=args.device, max_batch_size=64, backend_options=options
    ) as engine:
        out["load_s"] = round(time.perf_counter() - t0, 2)
        out["backend"] = engine.backend.describe()
        _check(engine.backend.device == _expected_device(args.device), f"backend on {engine.backend.device}")
        engine.classify(images[:8])  # warm-up (CUDA context, kernels, allocator)
        times = []
        for _ in range(3):
            t = time.perf_counter()
            results = engine.classify(images)
            times.append(time.perf_counter() - t)
        _check(all(r.ok for r in results), f"classify: errors {[r.error for r in results if not r.ok][:2]}")
        device_emb = np.stack([r.embedding for r in results]).astype(np.float32)
        device_scores = np.array([[r.scores[c] for c in engine.class_names] for r in results])
        out["classify_images_per_s"] = round(len(images) / min(times), 1)
        # the model alone on the preprocessed batch (the backend's run() returns host memory: synced)
        from radz_engine.io.inputs import decode

        x = engine.preprocess([decode(p) for p in images])
        engine.backend.run(x)
        model_times = []
        for _ in range(5):
            t = time.perf_counter()
            engine.backend.run(x)
            model_times.append(time.perf_counter() - t)
        out["model_only_images_per_s_batch64"] = round(len(images) / min(model_times), 1)
        if engine.backend.device.startswith("cuda"):
            import torch

            out["cuda_max_memory_allocated_mib"] = round(
                torch.cuda.max_memory_allocated(engine.backend.device) / 2**20, 1
            )
        # 64 submits, one at a time: latency of a lone request (decode + preprocess + queue + model + scoring)
        engine.submit(images[0]).result(120)
        lone = []
        for p in images:
            t = time.perf_counter()
            r = engine.submit(p).result(120)
            lone.append((time.perf_counter() - t) * 1000)
            _check(r.ok, f"submit: {r.error}")
        out["submit_latency_ms_one_at_a_time"] = _percentiles(lone)
        # 64 at once from 8 threads: dynamic batching; every caller gets its own image's result
        from concurrent.futures import ThreadPoolExecutor

        t = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            futures = list(pool.map(engine.submit, images))
        burst = [f.result(120) for f in futures]
        out["submit_burst64_s"] = round(time.perf_counter() - t, 3)
        _check(all(r.ok for r in burst), "submit burst: errors")
        burst_emb = np.stack([r.embedding for r in burst])
        out["submit_vs_classify_max_abs"] = float(np.abs(burst_emb - device_emb).max())
        _check(out["submit_vs_classify_max_abs"] <= 1e-3, "submit results differ from classify's (wrong image?)")
        stats = engine.stats()
        out["stats"] = {k: stats[k] for k in ("images", "errors", "batches", "latency_ms")}

    # The same checkpoint on the CPU through the torch backend (float32), and the bundle's ONNX on ORT.
    with Engine(carry.bundle, backend="torch", device="cpu", backend_options=options) as cpu_engine:
        cpu = cpu_engine.classify(images)
    cpu_emb = np.stack([r.embedding for r in cpu])
    cpu_scores = np.array([[r.scores[c] for c in cpu_engine.class_names] for r in cpu])
    out["vs_cpu_torch"] = {
        "embedding_max_abs": float(np.abs(device_emb - cpu_emb).max()),
        "score_max_abs": float(np.abs(device_scores - cpu_scores).max()),
        "cosine_min": float((device_emb * cpu_emb).sum(1).min()),
    }
    # float32 on CUDA: convolutions may use TF32 (cuDNN's default), hence the tolerances.
    close = out["vs_cpu_torch"]["embedding_max_abs"] <= 1e-2 and out["vs_cpu_torch"]["cosine_min"] >= 0.999
    _check(close, f"device vs CPU torch: {out['vs_cpu_torch']}")
    if importlib.util.find_spec("onnxruntime") is not None:
        with Engine(carry.bundle, backend="onnxruntime", device="cpu") as ort_engine:
            ort = ort_engine.classify(images)
        ort_emb = np.stack([r.embedding for r in ort])
        out["vs_onnxruntime_cpu"] = {
            "embedding_max_abs": float(np.abs(device_emb - ort_emb).max()),
            "cosine_min": float((device_emb * ort_emb).sum(1).min()),
        }
        ort_close = (
            out["vs_onnxruntime_cpu"]["embedding_max_abs"] <= 1e-2 and out["vs_onnxruntime_cpu"]["cosine_min"] >= 0.999
        )
        _check(ort_close, f"device vs ORT: {out['vs_onnxruntime_cpu']}")
    else:
        out["vs_onnxruntime_cpu"] = "skipped: onnxruntime not importable"
    # bfloat16 weights on the device (the GPU path radz bench measures)
    bf16 = {**options, "dtype": "bfloat16"}
    with Engine(carry.bundle, backend="torch", device=args.device, max_batch_size=64, backend_options=bf16) as engine:
        got = np.stack([r.embedding for r in engine.classify(images)])
    out["bfloat16_vs_float32"] = {"cosine_min": float((got * device_emb).sum(1).min())}
    _check(out["bfloat16_vs_float32"]["cosine_min"] > 0.99, f"bfloat16: {out['bfloat16_vs_float32']}")
    return out


# -- screen ---------------------------------------------------------------------------------------
def step_screen(args, carry: Carry, work: Path) -> dict:
    _need("torch", "transformers", "tokenizers", "safetensors", "PIL")
    from radz_engine.runtime.engine import Engine

    folder = work / "screen_images"
    folder.mkdir()
    for i in range(args.screen_images):  # the carried PNGs, repeated under new names (a bigger folder)
        src = carry.pngs[i % len(carry.pngs)]
        dst = folder / f"img_{i:05d}.png"
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
    options = {"checkpoint": str(carry.checkpoint)}
    out: dict = {"device": args.device, "files": args.screen_images}
    with Engine(
        carry.bundle, backend="torch", device=args.device, max_batch_size=64, backend_options=options
    ) as engine:
        list(engine.screen(sorted(folder.iterdir())[:16], progress=False, batch_size=16))  # warm-up
        t = time.perf_counter()
        results = list(engine.screen(folder, progress=False, batch_size=64))
        seconds = time.perf_counter() - t
        out["backend"] = engine.backend.name + " on " + engine.backend.device
    errors = [r for r in results if not r.ok]
    out.update(
        results=len(results),
        errors=len(errors),
        seconds=round(seconds, 3),
        images_per_s=round(len(results) / seconds, 1),
        sources_distinct=len({str(r.source) for r in results}),
    )
    _check(len(results) == args.screen_images, f"{len(results)} results for {args.screen_images} files")
    _check(not errors, f"screen errors: {[e.error for e in errors[:2]]}")
    _check(out["sources_distinct"] == args.screen_images, "a file screened twice or not at all")
    return out


# -- serve ----------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def step_serve(args, carry: Carry, work: Path) -> dict:
    _need("torch", "transformers", "pydicom", "pynetdicom", "highdicom", "prometheus_client", "PIL")
    from pydicom import dcmread
    from pynetdicom import AE

    _check(bool(carry.dicoms), f"{carry.root}/images/dicom: no .dcm files")
    datasets = [dcmread(p) for p in carry.dicoms]
    sent_uids = [str(ds.SOPInstanceUID) for ds in datasets]
    port = _free_port()
    work_dir = work / "serve"
    log_path = work / "serve_stderr.log"
    if args.workaround:  # the same `radz serve`, started through a wrapper that applies the workaround first
        wrapper = work / "radz_with_workaround.py"
        wrapper.write_text(f"import sys\n{WORKAROUND_PATCH}\nfrom radz_engine.cli import main\nsys.exit(main())\n")
        launcher = [sys.executable, str(wrapper)]
    else:
        launcher = [sys.executable, "-m", "radz_engine.cli"]
    cmd = [*launcher, "serve", "--bundle", str(carry.bundle), "--research-use",
           "--work-dir", str(work_dir), "--port", str(port), "--http-port", "-1", "--device", args.device,
           "--backend", "torch", "--checkpoint", str(carry.checkpoint), "--keep-spool"]  # fmt: skip
    out: dict = {"device": args.device, "command": " ".join(cmd[1:]), "instances": len(datasets)}
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    with open(log_path, "w") as stderr:
        server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
        try:
            ready = threading.Event()
            lines: list[str] = []

            def read_stdout():
                for line in server.stdout:
                    lines.append(line)
                    if "listening on" in line:
                        ready.set()

            threading.Thread(target=read_stdout, daemon=True).start()
            deadline = time.monotonic() + args.serve_start_timeout
            while not ready.is_set() and server.poll() is None and time.monotonic() < deadline:
                ready.wait(0.2)
            if not ready.is_set():
                tail = log_path.read_text()[-1500:]
                raise CheckFailed(f"server not listening (rc {server.poll()}); stderr tail: {tail}")
            out["start_s"] = round(time.perf_counter() - t0, 2)
            ae = AE(ae_title="GPUCHECK")
            for sop_class in {str(ds.SOPClassUID) for ds in datasets}:
                ae.add_requested_context(sop_class)
            t_send = time.perf_counter()
            assoc = ae.associate("127.0.0.1", port, ae_title="RADZ")
            _check(assoc.is_established, "association refused")
            statuses = [int(assoc.send_c_store(ds).Status) for ds in datasets]
            assoc.release()
            out["c_store_statuses"] = statuses
            _check(statuses == [0] * len(datasets), f"C-STORE statuses {statuses}")
            results_file = work_dir / "results" / "results.jsonl"
            records: dict = {}
            deadline = time.monotonic() + args.serve_sr_timeout
            while time.monotonic() < deadline and len(records) < len(datasets):
                if results_file.exists():
                    for line in results_file.read_text().splitlines():
                        rec = json.loads(line)
                        records[rec["sop_instance_uid"]] = rec
                time.sleep(0.1)
            out["all_results_s"] = round(time.perf_counter() - t_send, 3)
            _check(set(records) == set(sent_uids), f"results for {len(records)} of {len(datasets)} instances")
            failed = [r["error"] for r in records.values() if "error" in r]
            _check(not failed, f"instances failed: {failed[:2]}")
            out["received_to_scored_ms"] = _percentiles(
                [(r["scored_at"] - r["received_at"]) * 1000 for r in records.values()]
            )
            srs = sorted((work_dir / "spool" / "sr").glob("*.dcm"))
            _check(len(srs) == len(datasets), f"{len(srs)} SR files in the spool for {len(datasets)} instances")
            manifest = json.loads((carry.bundle / "manifest.json").read_text())
            classes = list(manifest["classes"])
            checked = []
            for path in srs:
                sr = dcmread(path)
                _check(sr.Modality == "SR", f"{path.name}: Modality {sr.Modality}")
                ref = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
                ref_uid = str(ref.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
                _check(ref_uid in records, f"{path.name}: references an instance not sent")
                findings = [
                    item.ConceptNameCodeSequence[0].CodeMeaning
                    for item in sr.ContentSequence
                    if item.ValueType == "CONTAINER"
                    and item.ConceptNameCodeSequence[0].CodingSchemeDesignator == "99RADZ"
                ]
                texts = {
                    item.ConceptNameCodeSequence[0].CodeMeaning: item.TextValue
                    for item in sr.ContentSequence
                    if item.ValueType == "TEXT"
                }
                _check(
                    len(findings) == len(classes), f"{path.name}: {len(findings)} findings for {len(classes)} classes"
                )
                _check(set(records[ref_uid]["scores"]) == set(classes), "results.jsonl scores another class list")
                _check(
                    texts.get("Algorithm Name") == manifest["card"]["name"],
                    f"Algorithm Name {texts.get('Algorithm Name')}",
                )
                _check("research use only" in str(texts.get("Comment", "")).lower(), "no research-use notice")
                checked.append(ref_uid)
            out["srs_checked"] = len(checked)
            example = records[sent_uids[0]]
            out["example_scores"] = {k: round(float(v), 4) for k, v in list(example["scores"].items())[:4]}
            out["sr_series_description"] = str(dcmread(srs[0]).SeriesDescription)
        finally:
            stop = time.perf_counter()
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(60)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait(10)
            out["stop_s"] = round(time.perf_counter() - stop, 2)
            out["server_rc"] = server.returncode
    log = log_path.read_text()
    shutil.copyfile(log_path, Path(args.out) / "serve_stderr.log")
    want = f"backend torch on {_expected_device(args.device)}"
    out["server_logged_backend"] = want in log
    _check(want in log, f"serve.log does not say '{want}'")
    _check(out["server_rc"] == 0, f"server exit status {out['server_rc']} after SIGTERM")
    return out


# -- driver ---------------------------------------------------------------------------------------
def environment(device: str) -> dict:
    env: dict = {"python": platform.python_version(), "device": device}
    for name in ("torch", "transformers", "tokenizers", "onnxruntime", "pydicom", "pynetdicom", "highdicom", "numpy"):
        try:
            module = __import__(name)
            env[name] = getattr(module, "__version__", "?")
        except Exception as error:  # noqa: BLE001 - reported, not fatal
            env[name] = f"missing ({type(error).__name__})"
    try:
        import torch

        env["cuda_available"] = torch.cuda.is_available()
        if device.startswith("cuda") and torch.cuda.is_available():
            env["card"] = torch.cuda.get_device_name(device)
            env["cuda"] = torch.version.cuda
    except Exception:  # noqa: BLE001
        pass
    return env


def markdown(summary: dict) -> str:
    env = summary["env"]
    lines = [f"Device {env.get('device')} ({env.get('card', 'no CUDA card')}), torch {env.get('torch')}", ""]
    if summary.get("workaround"):
        lines += [f"**{summary['workaround']}**", ""]
    lines += ["| step | status | seconds | key numbers |", "|---|---|---:|---|"]
    keys = {
        "engine": ("classify_images_per_s", "model_only_images_per_s_batch64", "submit_latency_ms_one_at_a_time",
                   "vs_cpu_torch", "bfloat16_vs_float32"),
        "screen": ("images_per_s", "results", "errors"),
        "serve": ("start_s", "all_results_s", "received_to_scored_ms", "srs_checked"),
    }  # fmt: skip
    for name, step in summary["steps"].items():
        status = step["status"] + (f": {step['reason']}" if step.get("reason") else "")
        numbers = "; ".join(f"{k} {json.dumps(step[k])}" for k in keys.get(name, ()) if k in step)
        lines.append(f"| {name} | {status.replace('|', '/')[:300]} | {step['seconds']} | {numbers.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda:0", help="cuda:N, cuda or cpu (default cuda:0)")
    parser.add_argument(
        "--carry", type=Path, default=ROOT / "build" / "gpu_carry", help="scripts/prepare_gpu_carry.sh's folder"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "out" / "gpu_check" / "paths", help="STEP.json, summary.json, paths.md"
    )
    parser.add_argument("--steps", default=",".join(STEPS), help=f"comma list of {', '.join(STEPS)}")
    parser.add_argument(
        "--screen-images", type=int, default=200, help="files in the screen step's folder (default 200)"
    )
    parser.add_argument("--serve-start-timeout", type=float, default=180.0, help="seconds for radz serve to listen")
    parser.add_argument("--serve-sr-timeout", type=float, default=120.0, help="seconds for every SR after the C-STOREs")
    args = parser.parse_args(argv)
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    bad = [s for s in steps if s not in STEPS]
    if bad:
        parser.error(f"--steps: unknown {bad}; choose from {STEPS}")
    if args.screen_images < 1:
        parser.error("--screen-images: must be >= 1")
    carry = Carry(args.carry)
    args.out.mkdir(parents=True, exist_ok=True)
    # gpu_check.sh's timeout sends SIGTERM: unwind (finally blocks stop radz serve) and keep what was written.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt("SIGTERM")))
    summary: dict = {"env": environment(args.device), "carry": str(args.carry), "steps": {}}
    args.workaround = False
    if loader_needs_onnxruntime(carry.bundle):
        # Reported, then worked around so that the GPU paths behind it still run: the run fails (exit 1).
        args.workaround = True
        exec(WORKAROUND_PATCH)  # noqa: S102 - a fixed string, this process only
        summary["workaround"] = f"BUG: {LOADER_BUG}; the steps ran with the ONNX io check skipped ({WORKAROUND_PATCH})"
        print(f"[gpu_paths] {summary['workaround']}", flush=True)
    print(json.dumps(summary["env"]), flush=True)
    failed = False
    with tempfile.TemporaryDirectory(prefix="radz_gpu_paths_") as tmp:
        for name in steps:
            work = Path(tmp) / name
            work.mkdir()
            t = time.perf_counter()
            try:
                fn = {"engine": step_engine, "screen": step_screen, "serve": step_serve}[name]
                result = fn(args, carry) if name == "engine" else fn(args, carry, work)
                result = {"status": "ok", **result}
            except Skip as reason:
                result = {"status": "skipped", "reason": str(reason)}
            except KeyboardInterrupt as stop:
                result = {"status": "failed", "reason": f"interrupted ({stop})"}
                failed = True
                result["seconds"] = round(time.perf_counter() - t, 2)
                (args.out / f"{name}.json").write_text(json.dumps({"step": name, **result}, indent=2) + "\n")
                summary["steps"][name] = result
                break
            except Exception as error:  # noqa: BLE001 - the next step runs whatever this one did
                result = {"status": "failed", "reason": f"{type(error).__name__}: {error}"[:2000]}
                result["traceback"] = traceback.format_exc()[-3000:]
                failed = True
            result["seconds"] = round(time.perf_counter() - t, 2)
            summary["steps"][name] = result
            (args.out / f"{name}.json").write_text(json.dumps({"step": name, **result}, indent=2, default=str) + "\n")
            shown = {k: v for k, v in result.items() if k != "traceback"}
            print(f"[gpu_paths] {name}: {json.dumps(shown, default=str)}", flush=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (args.out / "paths.md").write_text(markdown(summary))
    print(markdown(summary), flush=True)
    return 1 if failed or args.workaround else 0


if __name__ == "__main__":
    sys.exit(main())
