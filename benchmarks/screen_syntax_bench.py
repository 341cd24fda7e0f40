"""`radz screen` end to end per DICOM transfer syntax, against the user's pydicom loop, side by side.

    PYTHONPATH=/tmp/perf-cv2 python benchmarks/screen_syntax_bench.py --work /tmp/screen_syntax2048_n48 \\
        --n 48 --rounds 2 --out docs/screen_syntax_bench.json

For each syntax (--syntaxes, default all eight), N phantoms are written first unless WORK/<syntax>
already holds them: `radz synth --format dicom --size SIZE --transfer-syntax <syntax> --seed 9
--sites site_a,site_b,site_c`. The page cache is warmed (every file read once), then R rounds
alternate the order of the two sides, each a fresh subprocess (benchmarks/screen_bench.py):
  - `radz screen WORK/<syntax>/images` with default settings: images/s from its own summary (the
    screening loop after the engine is loaded, CSV writes included);
  - the user's loop (screen_bench.user_loop): pydicom dcmread -> pixel_array -> numpy rescale +
    window -> cv2.resize INTER_AREA (PIL box without OpenCV) -> ONNX Runtime -> the same scorer.
    Where pydicom has no plugin for a syntax the loop's row says so ("unavailable") and the run
    goes on.
Reported per syntax: both rates (median over rounds), radz / loop, max |score difference| between
the two sides (file by file), and radz's stage medians in ms per image from its result rows:
  read+decode (decode_ms: reading the file with pydicom, the tags, the pixel decode: the file read
  is in this stage), preprocess (preprocess_ms: the C++ window + area resize + normalisation),
  model and score (model_ms / score_ms are per batch: summed over the batches, divided by N),
  write: radz does not time its CSV writes, so the same rows are written again here through
  radz's own ResultWriter (a CSV row + flush per result) and timed per row.
radz decodes in a thread beside the model, so the stages overlap: their sum is not 1 / images/s.
Prints a markdown table and writes JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import screen_bench  # noqa: E402  (the sibling benchmark: run_radz, run_loop, max_score_diff)

SYNTAXES = ("explicit-le", "rle", "jpeg-lossless", "jpeg-baseline", "jpeg-ls", "j2k-lossless", "j2k", "htj2k-lossless")
LOSSLESS = {"explicit-le", "rle", "jpeg-lossless", "jpeg-ls", "j2k-lossless", "htj2k-lossless"}
STAGES = ("decode", "preprocess", "queue", "model", "score")


def _load() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover - not Unix
        return float("nan")


def make_phantoms(folder: Path, syntax: str, n: int, size: int) -> Path:
    """WORK/<syntax>/images with n phantoms of side `size` (written unless already there)."""
    images = folder / "images"
    files = sorted(images.glob("*.dcm")) if images.is_dir() else []
    if files:
        import pydicom

        rows = int(pydicom.dcmread(files[0], stop_before_pixels=True).Rows)
        if len(files) != n or rows != size:
            raise SystemExit(
                f"{folder} holds {len(files)} files of {rows} px, not {n} of {size}: use another --work folder"
            )
        return images
    command = [sys.executable, "-m", "radz_engine.cli", "synth", "--out", str(folder), "--n", str(n), "--seed", "9",
               "--sites", "site_a,site_b,site_c", "--format", "dicom", "--size", str(size),
               "--transfer-syntax", syntax, "--quiet"]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, text=True)
    return images


def _per_batch(rows: list[dict], column: str) -> float:
    """ms per image of a per-batch timing: the rows of one batch are consecutive and carry the
    same value; the batches' values summed over the images."""
    total, previous = 0.0, None
    for row in rows:
        value = row[column]
        if value != previous:
            total += float(value)
            previous = value
    return total / len(rows)


def stage_ms(rows: list[dict]) -> dict[str, float]:
    """radz's stage timings in ms per image from its CSV rows (ok rows only)."""
    ok = [r for r in rows if r["ok"] == "True"]
    out = {
        "decode": statistics.median(float(r["decode_ms"]) for r in ok),
        "preprocess": statistics.median(float(r["preprocess_ms"]) for r in ok),
        "queue": statistics.median(float(r["queue_ms"]) for r in ok),
        "model": _per_batch(ok, "model_ms"),
        "score": _per_batch(ok, "score_ms"),
    }
    return out


def write_ms(rows: list[dict], work: Path) -> float:
    """ms per result to write these rows again through radz's ResultWriter (CSV, flushed per row,
    as `radz screen --out X.csv` writes them)."""
    from radz_engine.runtime.results import Result
    from radz_engine.runtime.screen_output import ResultWriter

    classes = [c[len("score_") :] for c in rows[0] if c.startswith("score_") and f"threshold_{c[6:]}" in rows[0]]
    results = [
        Result(
            source=r["source"],
            scores={c: float(r[f"score_{c}"]) for c in classes} if r["ok"] == "True" else {},
            positives=[p for p in r["positives"].split(";") if p],
            timings={k: float(r[f"{k}_ms"]) for k in STAGES if r.get(f"{k}_ms")},
            error=r["error"] or None,
            metadata={"SOPInstanceUID": r["sop_instance_uid"], "StudyInstanceUID": r["study_instance_uid"]},
            model={k: r[f"bundle_{k}"] for k in ("name", "version", "hash")},
            thresholds={
                c: None if r[f"threshold_{c}"] in ("", "None") else float(r[f"threshold_{c}"]) for c in classes
            },
        )
        for r in rows
    ]
    out = work / "rewrite.csv"
    out.unlink(missing_ok=True)
    with ResultWriter(out, classes) as writer:
        start = time.perf_counter()
        for result in results:
            writer.write(result)
        seconds = time.perf_counter() - start
    return seconds * 1000.0 / len(results)


def bench_syntax(images: Path, rounds: int, batch: int, work: Path) -> dict:
    files = sorted(images.glob("*.dcm"))
    for path in files:  # warm the page cache: no side pays for the first disk read
        path.read_bytes()
    radz_rates: list[float] = []
    loop_rates: list[float] = []
    stages: list[dict] = []
    writes: list[float] = []
    radz_rows: dict = {}
    loop: dict | None = None
    unavailable = None
    resize = None
    load = [_load()]
    for r in range(rounds):
        sides = ["radz", "loop"] if r % 2 == 0 else ["loop", "radz"]
        for side in sides:
            if side == "radz":
                rate, radz_rows = screen_bench.run_radz(images, [], work, f"r{r}")
                radz_rates.append(rate)
                ordered = list(radz_rows.values())
                stages.append(stage_ms(ordered))
                writes.append(write_ms(ordered, work))
            elif unavailable is None:
                try:
                    info, loop = screen_bench.run_loop(images, batch, work)
                except subprocess.CalledProcessError as error:
                    lines = [line for line in (error.stderr or "").strip().splitlines() if line.strip()]
                    unavailable = (lines[-1] if lines else f"exit status {error.returncode}")[:300]
                    continue
                loop_rates.append(float(info["images_per_s"]))
                resize = info["resize"]
            print(f"  round {r + 1}: {side:<5} {(radz_rates if side == 'radz' else loop_rates or [0])[-1]:7.2f} images/s",
                  file=sys.stderr)  # fmt: skip
        load.append(_load())
    radz_rate = statistics.median(radz_rates)
    loop_rate = statistics.median(loop_rates) if loop_rates else None
    row = {
        "files": len(files),
        "mb_per_file": round(sum(p.stat().st_size for p in files) / len(files) / 1e6, 2),
        "radz_images_per_s": round(radz_rate, 2),
        "radz_rounds": [round(v, 2) for v in radz_rates],
        "loop_images_per_s": None if loop_rate is None else round(loop_rate, 2),
        "loop_rounds": [round(v, 2) for v in loop_rates],
        "loop_unavailable": unavailable,
        "loop_resize": resize,
        "ratio": None if loop_rate is None else round(radz_rate / loop_rate, 3),
        "max_score_diff": None if loop is None else screen_bench.max_score_diff(radz_rows, loop),
        "stage_ms_per_image": {k: round(statistics.median(s[k] for s in stages), 3) for k in STAGES},
        "write_ms_per_image": round(statistics.median(writes), 4),
        "load_1min": load,
    }
    return row


def _fmt(value, spec: str, empty: str = "n/a") -> str:
    return empty if value is None else format(value, spec)


def table(result: dict) -> str:
    head = (
        "| transfer syntax | MB/file | radz images/s | loop images/s | radz / loop | max \\|score diff\\| "
        "| read+decode | preprocess | model | score | write |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for name, row in result["syntaxes"].items():
        s = row["stage_ms_per_image"]
        loop = _fmt(row["loop_images_per_s"], ".2f", "unavailable")
        lines.append(
            f"| {name} | {row['mb_per_file']:.2f} | {row['radz_images_per_s']:.2f} | {loop} "
            f"| {_fmt(row['ratio'], '.2f')}{'' if row['ratio'] is None else 'x'} "
            f"| {_fmt(row['max_score_diff'], '.1e')} | {s['decode']:.1f} | {s['preprocess']:.2f} "
            f"| {s['model']:.1f} | {s['score']:.2f} | {row['write_ms_per_image']:.3f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the phantoms (WORK/<syntax>, reused)")
    parser.add_argument("--syntaxes", default=",".join(SYNTAXES), help=f"comma-separated, from {','.join(SYNTAXES)}")
    parser.add_argument("--n", type=int, default=12, help="phantoms per syntax")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dicom-size", type=int, default=2048, help="image side in pixels")
    parser.add_argument("--batch", type=int, default=32, help="the loop's ONNX Runtime batch")
    parser.add_argument("--out", type=Path, default=None, help="JSON results")
    args = parser.parse_args()
    syntaxes = [s.strip() for s in args.syntaxes.split(",") if s.strip()]
    unknown = [s for s in syntaxes if s not in SYNTAXES]
    if unknown or not syntaxes:
        parser.error(f"--syntaxes: unknown {unknown}, choose from {','.join(SYNTAXES)}")
    if args.n < 1 or args.rounds < 1:
        parser.error("--n and --rounds must be >= 1")

    result: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "n": args.n,
        "rounds": args.rounds,
        "dicom_size": args.dicom_size,
        "load_1min_start": _load(),
        "syntaxes": {},
        "failed": {},  # syntax -> why radz could not be measured
    }
    with tempfile.TemporaryDirectory(prefix="screen_syntax_") as tmp:
        for syntax in syntaxes:
            print(f"{syntax}:", file=sys.stderr)
            images = make_phantoms(args.work / syntax, syntax, args.n, args.dicom_size)
            try:
                measured = bench_syntax(images, args.rounds, args.batch, Path(tmp))
            except (subprocess.CalledProcessError, statistics.StatisticsError, ZeroDivisionError) as error:
                # radz failed on this syntax (or no file screened ok): say so, go on with the others
                detail = getattr(error, "stderr", None) or str(error)
                lines = [line for line in str(detail).strip().splitlines() if line.strip()]
                result["failed"][syntax] = (lines[-1] if lines else type(error).__name__)[:300]
                print(f"  {syntax}: radz failed: {result['failed'][syntax]}", file=sys.stderr)
                continue
            result["syntaxes"][syntax] = {"lossless": syntax in LOSSLESS, **measured}
    result["load_1min_end"] = _load()
    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"\n{args.n} files/syntax at {args.dicom_size} px, {args.rounds} alternated rounds, {os.cpu_count()} CPUs, "
          f"load {result['load_1min_start']} -> {result['load_1min_end']}; stages: radz ms/image")  # fmt: skip
    print(table(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
