"""`radz screen` against the loop a user would write, side by side in one run.

    radz synth --out /tmp/screen1000 --n 1000 --seed 5 --format dicom --dicom-size 512
    python benchmarks/screen_bench.py /tmp/screen1000/images --rounds 3 --out docs/screen_bench.json

Each round runs, in fresh subprocesses and in alternating order:
  - `radz screen DIR --out X.csv --quiet --summary-json S.json` with default settings (and, with
    --int8, `radz screen --int8`): images/s from its own summary (the screening loop, after the
    engine is loaded);
  - with --variants: screen_paths with decode threads and with processes (one channel), and the
    loop below with ONNX Runtime's spin-waiting off;
  - the straightforward loop, one process: pydicom dcmread -> pixel_array -> numpy rescale +
    LINEAR window (+ MONOCHROME1) -> cv2.resize INTER_AREA (PIL's box resize without OpenCV) ->
    CLIP normalisation -> ONNX Runtime on the bundle's image_encoder.onnx in batches of 32,
    intra-op threads = the cores (ORT's defaults otherwise) -> the same scorer; timed from the
    first file to the last score, after the session is made.
Both sides use the same cores (the thread budget of the machine). The scores of the two sides
are compared file by file (max |difference|). On a shared machine, CPU milliseconds per image
(the timed section's CPU time, all threads and worker processes) are steadier than images/s;
they are reported for every side but the CLI's. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _cpu_s() -> float:
    """CPU seconds of this process (all its threads) and of its children that have ended."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _first(value) -> float:
    try:
        return float(value[0])
    except TypeError:
        return float(value)


def user_loop(folder: Path, batch: int, scores_out: Path, spin: bool = True) -> dict:
    """The straightforward loop; writes {source: [scores]} as JSON; returns its timing.
    spin=False: the same loop with ONNX Runtime's spin-waiting off (what part of the gap is ORT's)."""
    import onnxruntime as ort
    import pydicom

    from radz_engine.bundle.default import default_bundle_path
    from radz_engine.bundle.loader import load_bundle
    from radz_engine.scoring.class_scorer import ClassScorer

    try:
        import cv2

        def resize(img, size):
            return cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)

        resizer = f"cv2 {cv2.__version__} INTER_AREA"
    except ImportError:
        from PIL import Image

        def resize(img, size):
            return np.asarray(Image.fromarray(img).resize((size[1], size[0]), Image.Resampling.BOX))

        resizer = "PIL BOX"

    bundle = load_bundle(default_bundle_path())
    spec = bundle.input_spec
    size = (int(spec["size"][0]), int(spec["size"][1]))
    mean = np.asarray(spec["mean"], np.float32)[None, :, None, None]
    std = np.asarray(spec["std"], np.float32)[None, :, None, None]
    options = ort.SessionOptions()
    options.intra_op_num_threads = len(os.sched_getaffinity(0))
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(bundle.file("image_encoder")), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    scorer = ClassScorer(bundle)
    files = sorted(str(p) for p in folder.iterdir() if p.suffix == ".dcm")

    out: dict[str, list[float]] = {}
    start, cpu = time.perf_counter(), _cpu_s()
    for i in range(0, len(files), batch):
        chunk = files[i : i + batch]
        images = []
        for path in chunk:
            ds = pydicom.dcmread(path)
            x = ds.pixel_array.astype(np.float32)
            x = x * float(getattr(ds, "RescaleSlope", 1.0)) + float(getattr(ds, "RescaleIntercept", 0.0))
            c, w = _first(ds.WindowCenter), _first(ds.WindowWidth)
            y = np.clip((x - (c - 0.5)) / (w - 1.0) + 0.5, 0.0, 1.0)
            if ds.PhotometricInterpretation == "MONOCHROME1":
                y = 1.0 - y
            images.append(resize(y.astype(np.float32), size))
        x = (np.stack(images)[:, None] - mean) / std
        embeddings = session.run(None, {name: x.astype(np.float32)})[0]
        names, scores, _ = scorer.score(embeddings)
        for path, row in zip(chunk, scores.tolist()):
            out[path] = row
    seconds, cpu = time.perf_counter() - start, _cpu_s() - cpu
    scores_out.write_text(json.dumps({"classes": list(names), "scores": out}))
    return {"images_per_s": len(files) / seconds, "cpu_ms": cpu * 1e3 / len(files), "resize": resizer}


def engine_screen(folder: Path, processes: bool, scores_out: Path) -> dict:
    """Engine defaults + screen_paths (threads, or processes sending one channel), timed like
    radz screen's summary (after the engine is loaded)."""
    from radz_engine import Engine
    from radz_engine.runtime.screen import screen_paths

    with Engine() as engine:
        start, cpu = time.perf_counter(), _cpu_s()
        results = list(screen_paths(engine, [folder], progress=False, processes=processes))
        seconds, cpu = time.perf_counter() - start, _cpu_s() - cpu
    scores = {r.source: [r.scores[c] for c in engine.class_names] for r in results if r.ok}
    scores_out.write_text(json.dumps({"classes": engine.class_names, "scores": scores}))
    return {"images_per_s": len(results) / seconds, "cpu_ms": cpu * 1e3 / len(results)}


def run_engine(folder: Path, processes: bool, work: Path) -> tuple[dict, dict]:
    scores = work / "engine_scores.json"
    command = [sys.executable, __file__, str(folder), "--engine-json", str(scores)]
    text = subprocess.run(
        [*command, *(["--processes"] if processes else [])], check=True, capture_output=True, text=True
    )
    rows = json.loads(scores.read_text())
    as_rows = {s: {f"score_{c}": v for c, v in zip(rows["classes"], values)} for s, values in rows["scores"].items()}
    return json.loads(text.stdout.strip().splitlines()[-1]), as_rows


def run_radz(folder: Path, extra: list[str], work: Path, tag: str) -> tuple[float, dict]:
    out, summary = work / f"radz_{tag}.csv", work / f"radz_{tag}.json"
    for stale in (out, summary):
        stale.unlink(missing_ok=True)
    command = [sys.executable, "-m", "radz_engine.cli", "screen", str(folder), "--out", str(out), "--quiet"]
    subprocess.run([*command, "--summary-json", str(summary), *extra], check=True, capture_output=True, text=True)
    rate = float(json.loads(summary.read_text())["images_per_s"])
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rate, {r["source"]: r for r in rows}


def run_loop(folder: Path, batch: int, work: Path, spin: bool = True) -> tuple[dict, dict]:
    scores = work / "loop_scores.json"
    command = [sys.executable, __file__, str(folder), "--loop-json", str(scores), "--batch", str(batch)]
    command += [] if spin else ["--no-spin"]
    text = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(text.strip().splitlines()[-1]), json.loads(scores.read_text())


def max_score_diff(radz_rows: dict, loop: dict) -> float:
    worst = 0.0
    for source, row in loop["scores"].items():
        theirs = radz_rows[str(Path(source))] if str(Path(source)) in radz_rows else radz_rows[source]
        for cls, value in zip(loop["classes"], row):
            worst = max(worst, abs(float(theirs[f"score_{cls}"]) - value))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of .dcm files (radz synth --format dicom)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--int8", action="store_true", help="also time `radz screen --int8`")
    parser.add_argument(
        "--radz-args",
        action="append",
        default=[],
        help="one more radz screen row with these flags (e.g. '--threads 1'); may be repeated",
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--variants", action="store_true", help="also: Engine.screen with processes, loop without spin")
    parser.add_argument("--loop-json", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--engine-json", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--processes", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-spin", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loop_json:
        print(json.dumps(user_loop(args.folder, args.batch, args.loop_json, spin=not args.no_spin)))
        return
    if args.engine_json:
        print(json.dumps(engine_screen(args.folder, args.processes, args.engine_json)))
        return

    sides = {"radz screen (defaults)": []}
    if args.int8:
        sides["radz screen --int8"] = ["--int8"]
    for extra_args in args.radz_args:
        sides[f"radz screen {extra_args}"] = extra_args.split()
    extra = ["screen_paths threads", "screen_paths processes (1 ch)", "user loop, ORT no spin"] if args.variants else []
    rates: dict[str, list[float]] = {name: [] for name in [*sides, *extra, "user loop"]}
    cpu_ms: dict[str, list[float]] = {name: [] for name in rates}  # not for radz screen (CLI)
    radz_rows: dict[str, dict] = {}
    resizer = ""
    for path in args.folder.iterdir():  # warm the page cache: no side pays for the first disk read
        if path.is_file():
            path.read_bytes()
    with tempfile.TemporaryDirectory(prefix="screen_bench_") as tmp:
        work = Path(tmp)
        for r in range(args.rounds):
            order = list(rates)
            for name in order if r % 2 == 0 else order[::-1]:
                info: dict = {}
                if name == "user loop":
                    info, loop = run_loop(args.folder, args.batch, work)
                    resizer = info["resize"]
                elif name == "user loop, ORT no spin":
                    info, _ = run_loop(args.folder, args.batch, work, spin=False)
                elif name.startswith("screen_paths"):
                    info, radz_rows[name] = run_engine(args.folder, "processes" in name, work)
                else:
                    rate, radz_rows[name] = run_radz(args.folder, sides[name], work, str(len(radz_rows)))
                    info = {"images_per_s": rate}
                rate = info["images_per_s"]
                rates[name].append(rate)
                if "cpu_ms" in info:
                    cpu_ms[name].append(info["cpu_ms"])
                print(f"round {r + 1}: {name:<24} {rate:8.1f} images/s", file=sys.stderr)
        agree = {name: max_score_diff(rows, loop) for name, rows in radz_rows.items()}
    loop_rate = statistics.median(rates["user loop"])
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover
        load = float("nan")
    print(f"\n{len(loop['scores'])} files, {args.rounds} alternated rounds, {os.cpu_count()} CPUs, load ~{load:.1f}")
    head = f"{'pipeline':<30} {'images/s (median)':>18} {'rounds':>26} {'vs loop':>8} {'CPU ms/img':>11}"
    print(f"{head} {'max |score diff|':>17}")
    table = {}
    for name, values in rates.items():
        median = statistics.median(values)
        diff = agree.get(name)
        cpu = statistics.median(cpu_ms[name]) if cpu_ms[name] else None
        print(
            f"{name:<30} {median:>18.1f} {', '.join(f'{v:.0f}' for v in values):>26} {median / loop_rate:>7.2f}x"
            f" {'' if cpu is None else f'{cpu:.2f}':>11} {'' if diff is None else f'{diff:.1e}':>17}"
        )
        table[name] = {
            "images_per_s": round(median, 1),
            "rounds": [round(v, 1) for v in values],
            "cpu_ms_per_image": None if cpu is None else round(cpu, 3),
            "max_score_diff": diff,
        }
    if args.out:
        machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
        result = {"machine": machine, "load_1min": load, "loop_resize": resizer, "rounds": args.rounds, "table": table}
        args.out.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
