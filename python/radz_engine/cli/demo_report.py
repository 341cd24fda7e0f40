"""The HTML report of `radz demo`, one self-contained file (images inlined as base64 PNG, the
reliability diagram as inline SVG; no script, so nothing can fail in the browser):

- the model card (the bundle's "card", docs/MODEL_CARD.md): name, version, content hash,
  intended use and its notice, training data, evaluation with its command, known limitations,
  licence; and the notice that the shipped model was trained on phantoms (research use only);
- per class, the operating point at the bundle's threshold: sensitivity, specificity, PPV, NPV
  with 95% bootstrap confidence intervals, and the confusion counts (TP, FP, FN, TN);
- per class AUC (in %) with its 95% bootstrap confidence interval;
- a reliability (calibration) diagram: observed frequency against predicted probability;
- the worst misses: false negatives with the lowest scores, with their images;
- ROC curves (when matplotlib is installed) and example images with their scores.

Bootstrap: images resampled with replacement (`BOOTSTRAP` rounds, fixed seed), percentile
intervals; a statistic undefined in a resample (no positives) is left out of that interval."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

BOOTSTRAP = 1000
NOTICE = (
    "The shipped default model was trained on synthetic phantom radiographs only. It is for research and "
    "engineering use (testing the software, its speed and its integration), not for diagnosis or any clinical use."
)


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    """Mann-Whitney AUC (ties count half); NaN without both classes."""
    pos, neg = s[y == 1], np.sort(s[y == 0])
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    below = np.searchsorted(neg, pos, side="left")
    ties = np.searchsorted(neg, pos, side="right") - below
    return float((below.sum() + 0.5 * ties.sum()) / (pos.size * neg.size))


def _rates(y: np.ndarray, positive: np.ndarray) -> dict:
    tp = int(np.sum(positive & (y == 1)))
    fp = int(np.sum(positive & (y == 0)))
    fn = int(np.sum(~positive & (y == 1)))
    tn = int(np.sum(~positive & (y == 0)))

    def ratio(a: int, b: int) -> float:
        return a / b if b else float("nan")

    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "sensitivity": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "ppv": ratio(tp, tp + fp),
        "npv": ratio(tn, tn + fn),
    }


def _interval(values: list[float]) -> tuple[float, float]:
    finite = np.array([v for v in values if v == v])
    if finite.size < 10:
        return float("nan"), float("nan")
    return float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))


def operating_points(
    labels: np.ndarray,
    scores: np.ndarray,
    classes: Sequence[str],
    thresholds: dict,
    rounds: int = BOOTSTRAP,
    seed: int = 0,
) -> list[dict]:
    """Per class: threshold, confusion counts, sensitivity / specificity / PPV / NPV and AUC,
    each rate with a 95% bootstrap interval ("<name>_ci": (low, high))."""
    out = []
    for j, name in enumerate(classes):
        known = ~np.isnan(labels[:, j])
        y, s = labels[known, j].astype(int), scores[known, j]
        threshold = thresholds.get(name)
        cut = float("inf") if threshold is None else float(threshold)
        row = {"class": name, "threshold": threshold, **_rates(y, s >= cut), "auc": _auc(y, s)}
        boot: dict[str, list[float]] = {k: [] for k in ("sensitivity", "specificity", "ppv", "npv", "auc")}
        rng = np.random.default_rng(seed + j)
        for _ in range(rounds if y.size else 0):
            idx = rng.integers(0, y.size, y.size)
            yb, sb = y[idx], s[idx]
            rates = _rates(yb, sb >= cut)
            for key in ("sensitivity", "specificity", "ppv", "npv"):
                boot[key].append(rates[key])
            boot["auc"].append(_auc(yb, sb))
        for key, values in boot.items():
            row[f"{key}_ci"] = _interval(values)
        out.append(row)
    return out


def reliability(labels: np.ndarray, scores: np.ndarray, bins: int = 10) -> list[dict]:
    """All (image, class) pairs with a label, in `bins` equal-width probability bins:
    {"low", "high", "n", "mean_score", "observed"} for each bin with pairs."""
    known = ~np.isnan(labels)
    y, s = labels[known], scores[known]
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(s, edges[1:-1]), 0, bins - 1)
    return [
        {
            "low": float(edges[b]),
            "high": float(edges[b + 1]),
            "n": int(np.sum(which == b)),
            "mean_score": float(s[which == b].mean()),
            "observed": float(y[which == b].mean()),
        }
        for b in range(bins)
        if np.any(which == b)
    ]


def reliability_svg(bins: list[dict], size: int = 320) -> str:
    """The reliability diagram as inline SVG: the diagonal (perfect calibration), one point per
    bin at (mean predicted, observed), its area showing how many pairs it holds."""
    pad = 40
    inner = size - 2 * pad

    def xy(px: float, py: float) -> tuple[float, float]:
        return pad + px * inner, size - pad - py * inner

    most = max((b["n"] for b in bins), default=1)
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{size}' height='{size}' role='img' "
        "aria-label='reliability diagram'>",
        f"<rect x='{pad}' y='{pad}' width='{inner}' height='{inner}' fill='none' stroke='#888'/>",
        "<line x1='{}' y1='{}' x2='{}' y2='{}' stroke='#bbb' stroke-dasharray='4'/>".format(*xy(0, 0), *xy(1, 1)),
    ]
    for tick in (0.0, 0.5, 1.0):
        x, y = xy(tick, 0)
        parts.append(f"<text x='{x}' y='{y + 16}' font-size='11' text-anchor='middle'>{tick:g}</text>")
        x, y = xy(0, tick)
        parts.append(f"<text x='{x - 6}' y='{y + 4}' font-size='11' text-anchor='end'>{tick:g}</text>")
    points = [xy(b["mean_score"], b["observed"]) for b in bins]
    if points:
        parts.append(
            "<polyline fill='none' stroke='#1f77b4' points='" + " ".join(f"{x:.1f},{y:.1f}" for x, y in points) + "'/>"
        )
    for b, (x, y) in zip(bins, points):
        radius = 3 + 7 * (b["n"] / most) ** 0.5
        parts.append(
            f"<circle cx='{x:.1f}' cy='{y:.1f}' r='{radius:.1f}' fill='#1f77b4' fill-opacity='0.6'>"
            f"<title>{b['n']} pairs: predicted {b['mean_score']:.2f}, observed {b['observed']:.2f}</title></circle>"
        )
    parts.append(
        f"<text x='{size / 2}' y='{size - 6}' font-size='12' text-anchor='middle'>predicted probability</text>"
        f"<text x='12' y='{size / 2}' font-size='12' text-anchor='middle' "
        f"transform='rotate(-90 12 {size / 2})'>observed frequency</text></svg>"
    )
    return "".join(parts)


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f}"


def _ci(pair: tuple[float, float]) -> str:
    low, high = pair
    return "" if low != low else f" <small>({100 * low:.1f}-{100 * high:.1f})</small>"


def _metrics_text(metrics: dict, prefix: str = "") -> str:
    parts = []
    for key, value in metrics.items():
        if isinstance(value, dict):
            parts.append(_metrics_text(value, f"{prefix}{key} "))
        else:
            parts.append(f"{prefix}{key} {value}")
    return ", ".join(p for p in parts if p)


def model_card_rows(identity: dict, manifest: dict) -> list[tuple[str, str]]:
    """(field, value) rows of the model card, from a bundle's identity and manifest: its
    "card" (docs/MODEL_CARD.md); a format-1 bundle (no card) as research use."""
    from radz_engine.bundle.card import INTENDED_USES, legacy_card, notice

    card = manifest.get("card") or legacy_card(manifest, str(identity.get("name")), str(identity.get("version")))
    model = manifest.get("model") or {}
    data = card.get("training_data") or {}
    datasets = "; ".join(
        f"{d.get('name', 'dataset')}: {d.get('count', '?')} images"
        + (f", sites {', '.join(d['sites'])}" if d.get("sites") else "")
        for d in data.get("datasets") or []
        if isinstance(d, dict)
    )
    evaluation = card.get("evaluation") or {}
    shown_eval = evaluation.get("summary") or _metrics_text(evaluation.get("metrics") or {}) or "not evaluated"
    if evaluation.get("command"):
        shown_eval += f" (command: {evaluation['command']})"
    use = card.get("intended_use", "research")
    rows = [
        ("bundle", f"{identity.get('name')} {identity.get('version')} (hash {identity.get('hash')})"),
        ("intended use", f"{use}: {INTENDED_USES.get(use, 'unknown')}"),
    ]
    if notice(card):
        rows.append(("notice on every result", notice(card)))
    if card.get("regulatory"):
        rows.append(("regulatory", card["regulatory"]))
    rows += [
        ("model", f"{model.get('name', '?')} preset, scoring mode {manifest.get('scoring_mode', '?')}"),
        ("classes", ", ".join(manifest.get("classes") or [])),
        ("training data", str(data.get("description", "not recorded")) + (f" ({datasets})" if datasets else "")),
        ("evaluation", shown_eval),
        (
            "calibration",
            (manifest.get("calibration") or {}).get("method", "none recorded")
            + (f" on {manifest['calibration'].get('n_images')} images" if manifest.get("calibration") else ""),
        ),
        ("known limitations", " | ".join(card.get("limitations") or []) or "none recorded"),
        ("licence", str(card.get("licence", "not recorded"))),
    ]
    return rows


def _png_base64(grey: np.ndarray, size: int = 160) -> str:
    from PIL import Image

    image = Image.fromarray(np.clip(grey * 255.0, 0, 255).astype(np.uint8), mode="L")
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _neighbours_html(neighbours: Sequence[dict], truth: set[str]) -> str:
    """An example's nearest indexed images: thumbnails with their findings and similarity."""
    if not neighbours:
        return ""
    cells = []
    for n in neighbours:
        findings = "<br>".join(
            f"<span class='{'pos' if f in truth else ''}'>{html.escape(f)}</span>" for f in n["findings"]
        )
        cells.append(
            f"<div class='nb'><img alt='' src='data:image/png;base64,{_png_base64(n['image'], 76)}'><br>"
            f"{n['similarity']:.2f} {html.escape(Path(n['source']).name)}<br>{findings or 'no finding'}</div>"
        )
    return "<div class='nbs'>similar cases:<br>" + "".join(cells) + "</div>"


def write_report(
    path: Path,
    *,
    title: str,
    summary: dict,
    auc_rows: list[tuple[str, int, float]],
    roc_png: Path | None,
    examples: Sequence[dict],
    operating: Sequence[dict] = (),
    calibration: Sequence[dict] = (),
    misses: Sequence[dict] = (),
    card: Sequence[tuple[str, str]] = (),
    phantom_notice: bool = True,
) -> Path:
    """examples / misses: dicts with "image" (grey [H, W] in [0, 1]), "source", "truth" (names),
    "scores" {name: p} (misses also "class" and "threshold"); operating: `operating_points` rows;
    calibration: `reliability` bins; card: `model_card_rows`."""
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<meta name='viewport' content='width=device-width'><link rel='icon' href='data:,'>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px} table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right} th{background:#eee}"
        "td:first-child{text-align:left} .ex{display:inline-block;width:250px;margin:6px;vertical-align:top;"
        "font-size:12px} .pos{color:#b00;font-weight:bold} .notice{background:#fff4d6;border:1px solid #e0b000;"
        "padding:8px} small{color:#666} .card td{text-align:left} .op small{white-space:nowrap}"
        ".nbs{margin-top:4px;border-top:1px solid #ddd;padding-top:4px} .nb{display:inline-block;width:80px;"
        "margin-right:2px;vertical-align:top;font-size:10px}</style>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if phantom_notice:
        parts.append(f"<p class='notice' role='note'><b>Notice.</b> {html.escape(NOTICE)}</p>")
    if card:
        parts.append("<h2>Model card</h2><table class='card'>")
        parts += [f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in card]
        parts.append("</table>")
    parts.append("<h2>Summary</h2><table>")
    for key, value in summary.items():
        parts.append(f"<tr><td>{html.escape(str(key))}</td><td>{html.escape(str(value))}</td></tr>")
    parts.append("</table><h2>Zero-shot AUC per class</h2><table><tr><th>class</th><th>positives</th><th>AUC</th></tr>")
    for name, n_pos, auc in auc_rows:
        shown = "n/a" if auc != auc else f"{100 * auc:.1f}"
        parts.append(f"<tr><td>{html.escape(name)}</td><td>{n_pos}</td><td>{shown}</td></tr>")
    parts.append("</table>")
    if operating:
        parts.append(
            "<h2>Operating point at the bundle's thresholds</h2><p>Percentages with 95% bootstrap "
            "confidence intervals in brackets; TP / FP / FN / TN are image counts.</p><table class='op'><tr>"
            "<th>class</th><th>threshold</th><th>AUC %</th><th>sensitivity</th><th>specificity</th>"
            "<th>PPV</th><th>NPV</th><th>TP</th><th>FP</th><th>FN</th><th>TN</th></tr>"
        )
        for r in operating:
            threshold = "never" if r["threshold"] is None else f"{r['threshold']:.3f}"
            parts.append(
                f"<tr><td>{html.escape(r['class'])}</td><td>{threshold}</td>"
                f"<td>{_pct(r['auc'])}{_ci(r['auc_ci'])}</td>"
                + "".join(
                    f"<td>{_pct(r[k])}{_ci(r[k + '_ci'])}</td>" for k in ("sensitivity", "specificity", "ppv", "npv")
                )
                + "".join(f"<td>{r[k]}</td>" for k in ("tp", "fp", "fn", "tn"))
                + "</tr>"
            )
        parts.append("</table>")
    if calibration:
        parts.append(
            "<h2>Reliability (calibration)</h2><p>Every (image, class) pair, binned by predicted "
            "probability: a calibrated model lies on the dashed diagonal; a point's size shows how many "
            "pairs its bin holds.</p>" + reliability_svg(list(calibration))
        )
    if misses:
        parts.append(
            "<h2>Worst misses</h2><p>False negatives (a true finding scored below its threshold), lowest "
            "score first.</p>"
        )
        for ex in misses:
            parts.append(
                f"<div class='ex miss'><img alt='missed {html.escape(ex['class'])}' "
                f"src='data:image/png;base64,{_png_base64(ex['image'])}'><br>"
                f"<b>{html.escape(Path(ex['source']).name)}</b><br>missed: {html.escape(ex['class'])} "
                f"{ex['scores'][ex['class']]:.3f} (threshold {ex['threshold']:.3f})<br>"
                f"truth: {html.escape(', '.join(ex['truth']) or 'no finding')}</div>"
            )
    if roc_png is not None and roc_png.exists():
        data = base64.b64encode(roc_png.read_bytes()).decode("ascii")
        parts.append(
            f"<h2>ROC curves</h2><img alt='ROC curves' style='max-width:100%' src='data:image/png;base64,{data}'>"
        )
    parts.append(
        "<h2>Examples</h2><p>Ground truth from the phantom generator; scores from the bundle "
        "(highest three; <span class='pos'>red</span> = a true finding). Below each image, its three "
        "most similar other images of the set (similar-case index, cosine similarity of the embeddings) "
        "with their confirmed findings; red: a finding the example has too.</p>"
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
            f"<b>{html.escape(Path(ex['source']).name)}</b><br>truth: {html.escape(truth)}<br>{lines}"
            + _neighbours_html(ex.get("neighbours") or [], set(ex["truth"]))
            + "</div>"
        )
    path.write_text("\n".join(parts) + "\n")
    return path
