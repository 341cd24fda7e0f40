"""The HTML report of `radz demo`: per-class AUC table, ROC curves and example images with
their scores, in one self-contained file (images inlined as base64 PNG)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _png_base64(grey: np.ndarray, size: int = 160) -> str:
    from PIL import Image

    image = Image.fromarray(np.clip(grey * 255.0, 0, 255).astype(np.uint8), mode="L")
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def write_report(
    path: Path,
    *,
    title: str,
    summary: dict,
    auc_rows: list[tuple[str, int, float]],
    roc_png: Path | None,
    examples: Sequence[dict],
) -> Path:
    """examples: dicts with "image" (grey [H, W] in [0, 1]), "source", "truth" (names), "scores" {name: p}."""
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px} table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right} th{background:#eee}"
        "td:first-child{text-align:left} .ex{display:inline-block;width:250px;margin:6px;vertical-align:top;"
        "font-size:12px} .pos{color:#b00;font-weight:bold}</style>",
        f"<h1>{html.escape(title)}</h1>",
        "<h2>Summary</h2><table>",
    ]
    for key, value in summary.items():
        parts.append(f"<tr><td>{html.escape(str(key))}</td><td>{html.escape(str(value))}</td></tr>")
    parts.append("</table><h2>Zero-shot AUC per class</h2><table><tr><th>class</th><th>positives</th><th>AUC</th></tr>")
    for name, n_pos, auc in auc_rows:
        shown = "n/a" if auc != auc else f"{100 * auc:.1f}"
        parts.append(f"<tr><td>{html.escape(name)}</td><td>{n_pos}</td><td>{shown}</td></tr>")
    parts.append("</table>")
    if roc_png is not None and roc_png.exists():
        data = base64.b64encode(roc_png.read_bytes()).decode("ascii")
        parts.append(
            f"<h2>ROC curves</h2><img alt='ROC curves' style='max-width:100%' src='data:image/png;base64,{data}'>"
        )
    parts.append(
        "<h2>Examples</h2><p>Ground truth from the phantom generator; scores from the bundle "
        "(highest three; <span class='pos'>red</span> = a true finding).</p>"
    )
    for ex in examples:
        top = sorted(ex["scores"].items(), key=lambda kv: -kv[1])[:3]
        lines = "<br>".join(
            f"<span class='{'pos' if name in ex['truth'] else ''}'>{html.escape(name)} {p:.2f}</span>"
            for name, p in top
        )
        truth = ", ".join(ex["truth"]) or "no finding"
        parts.append(
            f"<div class='ex'><img alt='' src='data:image/png;base64,{_png_base64(ex['image'])}'><br>"
            f"<b>{html.escape(Path(ex['source']).name)}</b><br>truth: {html.escape(truth)}<br>{lines}</div>"
        )
    path.write_text("\n".join(parts) + "\n")
    return path
