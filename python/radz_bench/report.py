"""Rendering of a benchmark report: JSON (everything), a Markdown table, a PNG plot."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["write_outputs", "throughput_markdown", "scaling_markdown", "load_markdown", "plot_throughput", "plot_load"]


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def throughput_markdown(report: dict) -> str:
    m = report["model"]
    machine = report["machine"]
    where = machine.get("gpus", {}).get(report["device"]) or f"{machine.get('cpu')} ({machine.get('cores')} cores)"
    lines = [
        f"Model: {m['name']}, input {m['input']}, {m['gflops_per_image_needed']:.3f} GFLOP per image "
        f"(eager runs {m['gflops_per_image_executed_by_eager']:.3f}: every layer), "
        f"reference weights: {m['reference_weights']}.",
        f"Device: {report['device']} = {where}; torch threads {report.get('torch_threads')}.",
    ]
    peaks = [f"{p} {v['tflops']:.3f} TFLOP/s (n={v['n']})" for p, v in report["peak"].items() if v]
    if peaks:
        lines.append("Matmul peak measured in this run: " + ", ".join(peaks) + ".")
    lines += [
        "",
        "| phase | precision | batch | side | median ms | p95 ms | p99 ms | images/s | TFLOP/s | of peak | "
        "vs eager | peak MiB |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        mem = r.get("memory", {})
        mib = mem.get("torch_allocated_peak_mib") or mem.get("device_used_peak_mib") or mem.get("rss_peak_mib")
        frac = f"{100 * r['fraction_of_peak']:.1f}%" if r.get("fraction_of_peak") is not None else "-"
        ratio = f"{r['vs_eager']:.2f}x" if r.get("vs_eager") is not None else "-"
        lines.append(
            f"| {r['phase']} | {r['precision']} | {r['batch']} | {r['side']} | {_fmt(r['median_ms'], 2)} | "
            f"{_fmt(r['p95_ms'], 2)} | {_fmt(r['p99_ms'], 2)} | {_fmt(r['images_per_s'])} | "
            f"{_fmt(r['tflops'], 3)} | {frac} | {ratio} | {_fmt(mib, 0)} |"
        )
    for s in report.get("skipped", []):
        lines.append(f"\nSkipped: {s['what']}: {s['reason']}")
    if report.get("scaling"):
        lines += [
            "",
            scaling_markdown(report["scaling"])
            if report["scaling"].get("rows")
            else f"Multi-device scaling not measured: {report['scaling'].get('error')}",
        ]
    lat = report.get("latency")
    if lat:
        lines += [
            "",
            f"submit() at low load (one request in flight, {lat['requests']} requests, max delay "
            f"{lat['max_delay_ms']} ms): p50 {lat['submit_p50_ms']} ms, p99 {lat['submit_p99_ms']} ms; bare "
            f"backend batch 1 {lat['bare_batch1_ms']} ms (its own p99 {lat.get('bare_batch1_p99_ms', '?')} ms, "
            "alternated with the submits); target p99 <= 1.3 x bare + max delay = "
            f"{lat['target_p99_ms']} ms.",
        ]
    scr = report.get("screen")
    if scr:
        lines += [
            "",
            f"Engine.screen over {scr['files']} phantom DICOMs ({scr['size']} x {scr['size']}), "
            f"{scr['workers']} worker(s): {scr['images_per_s']} images/s; mean ms per image {scr['mean_ms']}.",
        ]
    return "\n".join(lines) + "\n"


def scaling_markdown(scaling: dict) -> str:
    lines = [
        f"Multi-device scaling: backend {scaling['backend']}, {scaling['precision']}, max batch "
        f"{scaling['batch']}, {scaling['images']} images through Engine.submit ({scaling['submitters']} submitting "
        "threads, one shared queue).",
        "",
        "| devices | images/s | speed-up | efficiency |",
        "|---|---:|---:|---:|",
    ]
    for r in scaling["rows"]:
        lines.append(
            f"| {', '.join(r['devices'])} | {_fmt(r['images_per_s'])} | {r['speedup']:.2f}x | "
            f"{100 * r['efficiency']:.0f}% |"
        )
    return "\n".join(lines) + "\n"


def load_markdown(report: dict) -> str:
    lines = [
        f"Target: {report['target']}; windows of {report['window_s']} s, stable when {report['stable_windows']} "
        f"consecutive windows agree within {100 * report['tolerance']:.0f}% (p50 and throughput), at most "
        f"{report['max_windows']} windows; p99 bound {report['p99_bound_ms']} ms.",
        "",
        "| offered req/s | achieved req/s | p50 ms | p90 ms | p95 ms | p99 ms | requests | errors | windows | stable |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["rates"]:
        lines.append(
            f"| {_fmt(r['offered_per_s'])} | {_fmt(r['achieved_per_s'])} | {_fmt(r.get('p50_ms'), 2)} | "
            f"{_fmt(r.get('p90_ms'), 2)} | {_fmt(r.get('p95_ms'), 2)} | {_fmt(r.get('p99_ms'), 2)} | "
            f"{r['requests']} | {r['errors']} | {r['windows']} | {'yes' if r['stable'] else 'no'} |"
        )
    if report.get("stopped"):
        lines.append(f"\nStopped: {report['stopped']}")
    return "\n".join(lines) + "\n"


def plot_throughput(report: dict, path: Path) -> Path | None:
    """images/s against batch per side (model phase), and the fraction of peak."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = [r for r in report["rows"] if r["phase"] == "model"]
    if not rows:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key in sorted({(r["side"], r["precision"]) for r in rows}):
        mine = sorted((r for r in rows if (r["side"], r["precision"]) == key), key=lambda r: r["batch"])
        label = f"{key[0]} {key[1]}"
        style = "--" if mine[0]["kind"] == "reference" else "-"
        left.plot([r["batch"] for r in mine], [r["images_per_s"] for r in mine], style, marker="o", label=label)
        if mine[0].get("fraction_of_peak") is not None:
            right.plot(
                [r["batch"] for r in mine], [100 * r["fraction_of_peak"] for r in mine], style, marker="o", label=label
            )
    for ax, ylabel in ((left, "images/s"), (right, "% of matmul peak (same run)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    left.legend(fontsize=8)
    machine = report["machine"]
    where = machine.get("gpus", {}).get(report["device"]) or machine.get("cpu", "")
    fig.suptitle(f"radz bench: {report['model']['name']} on {report['device']} ({where})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_load(report: dict, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rates = [r for r in report["rates"] if r.get("p50_ms") is not None]
    if not rates:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    x = [r["offered_per_s"] for r in rates]
    for key in ("p50_ms", "p90_ms", "p99_ms"):
        ax.plot(x, [r[key] for r in rates], marker="o", label=key[:-3])
    ax.axhline(report["p99_bound_ms"], color="grey", linestyle=":", label="p99 bound")
    ax.set_xlabel("offered load (requests/s, Poisson)")
    ax.set_ylabel("latency (ms)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"radz bench load: {report['target']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_outputs(report: dict, out: str | Path, markdown: str, plot) -> dict:
    """<out>.json, <out>.md, <out>.png (out: a path without suffix, or with .json)."""
    out = Path(out)
    if out.suffix in (".json", ".md", ".png"):
        out = out.with_suffix("")
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = {"json": out.with_suffix(".json"), "markdown": out.with_suffix(".md"), "png": out.with_suffix(".png")}
    paths["json"].write_text(json.dumps(report, indent=2, default=str))
    paths["markdown"].write_text(markdown)
    if plot(report, paths["png"]) is None:
        paths.pop("png")
    return paths
