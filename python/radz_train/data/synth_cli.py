"""`radz synth`: write a folder of phantom radiographs with reports and labels.

    radz synth --out DIR --n N [--seed S] [--sites site_a,site_b,site_c] [--size SIDE]
               [--format png|npy|dicom] [--transfer-syntax NAME] [--workers K]
    python -m radz_train.data.synth_cli ...   (same options)

Writes DIR/images/<index>.<ext> and DIR/labels.csv with columns
    path, report, site, <one 0/1 column per finding>, no_finding, findings_json, index, seed
where `path` is relative to DIR and `findings_json` holds severity / laterality / location /
size of each finding. PNG is 8-bit grayscale, npy is float32 in [0, 1], dicom is a CR or DX
file (the site decides); --size is the image side for every format. Case i is acquired at sites[i % len(sites)].
--transfer-syntax (dicom only) encodes the pixels as explicit-le (default, uncompressed), rle,
jpeg-lossless, jpeg-baseline, jpeg-ls, j2k-lossless, j2k or htj2k-lossless, like real archives
(see radz_train.data.dicom_out; jpeg-baseline and j2k are lossy).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Sequence

from radz_engine.io.transfer_syntaxes import TRANSFER_SYNTAXES
from radz_train.data.phantom import FINDINGS, SITES, generate_case

TRANSFER_SYNTAX_NAMES = tuple(TRANSFER_SYNTAXES)

__all__ = ["main", "build_parser", "CSV_COLUMNS"]

CSV_COLUMNS = ["path", "report", "site", *FINDINGS, "no_finding", "findings_json", "index", "seed"]
_EXT = {"png": "png", "npy": "npy", "dicom": "dcm"}


def build_parser() -> argparse.ArgumentParser:
    from radz_engine.cli.options import add_quiet, alias, parser, workers_type

    p = parser("radz synth", "Generate phantom chest radiographs with reports and labels.")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--n", type=int, required=True, help="number of images")
    p.add_argument("--seed", type=int, default=0, help="series seed")
    p.add_argument("--start", type=int, default=0, help="first case index")
    p.add_argument("--sites", default="site_a", help=f"comma-separated sites from {','.join(SITES)}")
    p.add_argument("--format", choices=tuple(_EXT), default="png", help="image file format")
    p.add_argument(
        "--size",
        type=int,
        default=None,
        help="image side in pixels (default: 256 for png/npy, 1024 for dicom)",
    )
    alias(p, "--dicom-size", "dicom_size", type=int, default=None)  # old: the side of dicom images
    p.add_argument(
        "--transfer-syntax",
        choices=TRANSFER_SYNTAX_NAMES,
        default="explicit-le",
        help="DICOM pixel encoding (--format dicom only); jpeg-baseline and j2k are lossy",
    )
    p.add_argument("--workers", type=workers_type, default=1, help="processes (0 or 1: in this process)")
    add_quiet(p)
    p.add_argument(
        "--progress-every",
        type=float,
        default=10.0,
        help="without a terminal (nohup, cron, SLURM): seconds between plain progress lines",
    )
    p.add_argument(
        "--withhold",
        default="",
        help="comma-separated findings whose name the reports never use "
        "(described by their signs only; the unseen-class experiment)",
    )
    return p


def _resolve_size(args: argparse.Namespace) -> int:
    """--size, else the old --dicom-size for dicom, else 256 (png/npy) or 1024 (dicom)."""
    if args.format == "dicom" and args.dicom_size is not None and args.size is None:
        return args.dicom_size
    if args.size is not None:
        return args.size
    return 1024 if args.format == "dicom" else 256


def _check(args: argparse.Namespace) -> list[str]:
    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    if args.seed < 0 or args.start < 0:
        raise ValueError(f"--seed and --start must be >= 0, got {args.seed}, {args.start}")
    args.workers = max(1, args.workers)
    if args.transfer_syntax != "explicit-le" and args.format != "dicom":
        raise ValueError(f"--transfer-syntax {args.transfer_syntax} needs --format dicom, got --format {args.format}")
    args.size = _resolve_size(args)
    if not 32 <= args.size <= 4096:
        raise ValueError(f"--size must be in 32..4096, got {args.size}")
    sites = [s.strip() for s in args.sites.split(",") if s.strip()]
    bad = [s for s in sites if s not in SITES]
    if not sites or bad:
        raise ValueError(f"--sites must name sites from {tuple(SITES)}, got {args.sites!r}")
    return sites


def _write_one(job: tuple) -> dict:
    """Generate and write one case; returns its CSV row. Runs in worker processes."""
    index, seed, site, size, fmt, out_dir, withhold, syntax = job
    case = generate_case(index, seed=seed, site=site, size=size, withhold=withhold)
    rel = os.path.join("images", f"{index:07d}.{_EXT[fmt]}")
    path = os.path.join(out_dir, rel)
    if fmt == "png":
        import numpy as np
        from PIL import Image

        Image.fromarray(np.rint(case.image * 255).astype(np.uint8), mode="L").save(path)
    elif fmt == "npy":
        import numpy as np

        np.save(path, case.image)
    else:
        from radz_train.data.dicom_out import write_case

        write_case(case, path, transfer_syntax=syntax)
    row = {
        "path": rel,
        "report": case.report,
        "site": case.site,
        **case.labels,
        "findings_json": json.dumps([f.to_dict() for f in case.findings]),
        "index": index,
        "seed": seed,
    }
    return row


class _PlainProgress:
    """Without a terminal (nohup, cron, SLURM logs): one plain line every `every` seconds and at
    the end, instead of a carriage-return bar."""

    def __init__(self, total: int, every: float) -> None:
        self.total, self.every, self.n = total, every, 0
        self.start = self.last = time.perf_counter()

    def update(self, k: int) -> None:
        self.n += k
        now = time.perf_counter()
        if now - self.last >= self.every or self.n == self.total:
            self.last = now
            rate = self.n / max(now - self.start, 1e-9)
            eta = (self.total - self.n) / rate if rate > 0 else float("nan")
            print(
                f"radz synth: {self.n}/{self.total} images, {rate:.1f}/s, about {eta:.0f} s left",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool, every: float = 10.0):
    """A tqdm bar on a terminal; plain lines every `every` seconds otherwise (or without tqdm)."""
    if not enabled:
        return None
    if sys.stderr.isatty():
        try:
            from tqdm import tqdm

            return tqdm(total=total, unit="img", desc="synth")
        except ImportError:
            pass
    return _PlainProgress(total, every)


def _write_labels(out: str, rows: list[dict]) -> None:
    """labels.csv written atomically (a crash leaves the old one or the new one, never half)."""
    path = os.path.join(out, "labels.csv")
    tmp = path + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `radz synth`; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        sites = _check(args)
    except ValueError as e:
        parser.error(str(e))
    size = args.size
    withhold = tuple(w.strip() for w in args.withhold.split(",") if w.strip())
    bad = [w for w in withhold if w not in FINDINGS]
    if bad:
        parser.error(f"--withhold must name findings from {FINDINGS}, got {bad}")
    os.makedirs(os.path.join(args.out, "images"), exist_ok=True)
    jobs = [
        (i, args.seed, sites[i % len(sites)], size, args.format, args.out, withhold, args.transfer_syntax)
        for i in range(args.start, args.start + args.n)
    ]
    bar = _progress(len(jobs), not args.quiet, args.progress_every)
    rows: list[dict] = []
    t0 = time.perf_counter()
    import signal
    import threading

    previous = None
    if threading.current_thread() is threading.main_thread():  # SIGTERM (kill, SLURM) ends it like Ctrl-C
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        _generate(jobs, args.workers, rows, bar)
    except KeyboardInterrupt:
        _write_labels(args.out, rows)
        print(
            f"radz synth: interrupted; labels.csv lists the {len(rows)} images written so far "
            f"(rerun the command to make all {len(jobs)})",
            file=sys.stderr,
        )
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if bar:
            bar.close()
    dt = time.perf_counter() - t0
    _write_labels(args.out, rows)
    print(
        f"wrote {len(rows)} images ({_format_name(args)}, {size}x{size}) and labels.csv to {args.out} "
        f"in {dt:.1f}s: {len(rows) / max(dt, 1e-9):.1f} images/s with {args.workers} worker(s)"
    )
    return 0


def _format_name(args: argparse.Namespace) -> str:
    return f"dicom {args.transfer_syntax}" if args.format == "dicom" else args.format


def _generate(jobs: list, workers: int, rows: list, bar) -> None:
    """Write every job's image, appending its label row to `rows` in order (so that an interrupt
    leaves `rows` listing exactly the images written before it)."""
    if workers > 1:
        import multiprocessing as mp

        # spawn: safe with threads in the parent; each worker only needs numpy (+ pydicom/Pillow)
        with mp.get_context("spawn").Pool(workers) as pool:
            for row in pool.imap(_write_one, jobs, chunksize=max(1, min(32, len(jobs) // (4 * workers)))):
                rows.append(row)
                if bar:
                    bar.update(1)
    else:
        for job in jobs:
            rows.append(_write_one(job))
            if bar:
                bar.update(1)


if __name__ == "__main__":
    raise SystemExit(main())
