"""Free-text radiology reports for phantom radiographs.

`write_report(findings, seed=...)` returns a report with a FINDINGS and an IMPRESSION
section. Wording varies (synonyms, sentence templates, order), severity and side words
follow the `Finding`, absent findings are sometimes negated explicitly ("No pneumothorax.",
"without effusion"), and normal studies get normal sentences ("The lungs are clear.",
"No acute cardiopulmonary process."). Every positive sentence describes what the phantom
actually draws (meniscus, visceral pleural line, air bronchograms, Kerley lines, ...), because
later stages train on the text alone. Reports never hedge: the ground truth is certain.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .phantom import FINDINGS, Finding

__all__ = ["write_report", "side_word", "severity_word"]

_SIZE_WORD = {"mild": ("small",), "moderate": ("moderate", "moderate-sized"),
              "severe": ("large",)}
_DEGREE_ADJ = {"mild": ("mild", "slight"), "moderate": ("moderate",),
               "severe": ("marked", "severe")}
_DEGREE_ADV = {"mild": ("mildly",), "moderate": ("moderately",),
               "severe": ("markedly", "severely")}
_LOBE = {("right", "upper"): "right upper lobe", ("right", "middle"): "right middle lobe",
         ("right", "lower"): "right lower lobe", ("left", "upper"): "left upper lobe",
         ("left", "middle"): "lingula", ("left", "lower"): "left lower lobe"}
_ZONE = {"upper": ("upper lung zone", "upper lung"), "middle": ("mid lung zone", "mid lung"),
         "lower": ("lung base", "lower lung zone")}


def side_word(laterality: str | None) -> str:
    """'right' / 'left' / 'bilateral' ('' for None)."""
    return laterality or ""


def severity_word(severity: str | None, rng: np.random.Generator, kind: str = "adj") -> str:
    """A degree word for a severity: kind 'adj' (mild), 'adv' (mildly) or 'size' (small)."""
    table = {"adj": _DEGREE_ADJ, "adv": _DEGREE_ADV, "size": _SIZE_WORD}[kind]
    words = table[severity or "mild"]
    return words[int(rng.integers(len(words)))]


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _where(f: Finding, rng: np.random.Generator) -> str:
    """Location phrase for focal findings: a lobe name or a lung zone."""
    side = f.laterality if f.laterality in ("left", "right") else "right"
    zone = f.location or "middle"
    if rng.random() < 0.5:
        return _LOBE[(side, zone)]
    return f"{side} {_pick(rng, _ZONE[zone])}"


def _positive(f: Finding, rng: np.random.Generator) -> tuple[str, str]:
    """(findings sentence, impression phrase) for one present finding."""
    sev, lat = f.severity, f.laterality
    adj, adv, size = (severity_word(sev, rng, k) for k in ("adj", "adv", "size"))
    bil = lat == "bilateral"
    if f.name == "cardiomegaly":
        s = _pick(rng, [
            f"The cardiac silhouette is {adv} enlarged.",
            f"There is {adj} cardiomegaly.",
            f"{_cap(adj)} enlargement of the cardiac silhouette.",
            f"The heart is {adv} enlarged.",
            f"{_cap(adj)} cardiac enlargement, with a widened cardiothoracic ratio.",
        ])
        return s, _pick(rng, [f"{adj} cardiomegaly", f"{adj} cardiac enlargement",
                              f"{adv} enlarged cardiac silhouette"])
    if f.name == "pleural_effusion":
        if bil:
            s = _pick(rng, [
                f"There are {size} bilateral pleural effusions.",
                f"{_cap(size)} bilateral pleural effusions with blunting of both costophrenic angles.",
                f"Bilateral {size} pleural effusions layer at the lung bases with meniscus configuration.",
            ])
            return s, f"{size} bilateral pleural effusions"
        s = _pick(rng, [
            f"There is a {size} {lat} pleural effusion.",
            f"{_cap(size)} {lat} pleural effusion with blunting of the {lat} costophrenic angle.",
            f"Blunting of the {lat} costophrenic angle with a meniscus, consistent with a {size} pleural effusion.",
            f"{_cap(lat)} pleural fluid with a meniscus, {size} in amount.",
        ])
        return s, _pick(rng, [f"{size} {lat} pleural effusion", f"{size} {lat} effusion"])
    if f.name == "pneumothorax":
        s = _pick(rng, [
            f"There is a {size} {lat} pneumothorax.",
            f"A {size} {lat} apicolateral pneumothorax is present, with a visible visceral pleural line.",
            f"{_cap(lat)} visceral pleural line with absent lung markings peripherally, consistent with a {size} pneumothorax.",
        ])
        return s, f"{size} {lat} pneumothorax"
    if f.name == "consolidation":
        kind = {"mild": ("patchy", "focal"), "moderate": ("confluent", "moderate"),
                "severe": ("dense", "extensive")}[sev or "mild"]
        k = _pick(rng, kind)
        if bil:
            zone = _pick(rng, _ZONE[f.location or "middle"])
            where = f"both {zone}s" if not zone.endswith("base") else "both lung bases"
        else:
            where = _where(f, rng)
        s = _pick(rng, [
            f"There is {k} consolidation in the {where}.",
            f"{_cap(k)} airspace opacity in the {where} with air bronchograms.",
            f"{_cap(k)} consolidation of the {where}, with air bronchograms.",
        ])
        return s, _pick(rng, [f"{k} consolidation in the {where}",
                              f"{k} {where} airspace consolidation"])
    if f.name == "nodule":
        mm = int(round(f.size_mm or 15))
        where = _where(f, rng)
        s = _pick(rng, [
            f"There is a {mm} mm nodule in the {where}.",
            f"A well-circumscribed {mm} mm pulmonary nodule projects over the {where}.",
            f"Rounded {mm} mm nodular opacity in the {where}.",
        ])
        return s, f"{mm} mm {where} pulmonary nodule"
    if f.name == "mass":
        cm = f"{(f.size_mm or 50) / 10:.1f}"
        where = _where(f, rng)
        s = _pick(rng, [
            f"There is a {cm} cm lobulated mass in the {where}.",
            f"A {cm} cm mass with irregular, spiculated margins is seen in the {where}.",
            f"Large {where} mass measuring {cm} cm.",
        ])
        return s, f"{cm} cm {where} mass"
    if f.name == "atelectasis":
        base = "bibasilar" if bil else f"{lat} basilar"
        dia = "both hemidiaphragms" if bil else f"the {lat} hemidiaphragm"
        if sev == "mild":
            s = _pick(rng, [
                f"Linear plate-like atelectasis at the {'lung bases' if bil else lat + ' lung base'}.",
                f"Mild {base} atelectasis.",
                f"Subsegmental atelectasis at the {'bases' if bil else lat + ' base'}.",
            ])
            return s, f"mild {base} atelectasis"
        if sev == "moderate":
            s = _pick(rng, [
                f"Moderate {base} atelectasis with elevation of {dia}.",
                f"{_cap(base)} atelectasis with volume loss and elevation of {dia}.",
            ])
            return s, f"{base} atelectasis"
        lobe = "both lower lobes" if bil else f"the {lat} lower lobe"
        s = _pick(rng, [
            f"Collapse of {lobe} with marked volume loss and elevation of {dia}.",
            f"Severe {base} atelectasis with a triangular opacity at the medial lung base and volume loss.",
        ])
        return s, f"{'bilateral lower lobe' if bil else lat + ' lower lobe'} collapse"
    if f.name == "edema":
        if sev == "mild":
            s = _pick(rng, [
                "Mild interstitial pulmonary edema with Kerley B lines and cephalization of the pulmonary vasculature.",
                "Mild pulmonary vascular congestion with interstitial edema and Kerley B lines at the bases.",
            ])
            return s, "mild interstitial pulmonary edema"
        if sev == "moderate":
            s = _pick(rng, [
                "Moderate pulmonary edema with perihilar haziness and Kerley B lines.",
                "Perihilar haziness and indistinct vessels, consistent with moderate pulmonary edema.",
            ])
            return s, "moderate pulmonary edema"
        s = _pick(rng, [
            "Severe alveolar pulmonary edema in a perihilar bat-wing distribution.",
            "Confluent bilateral perihilar opacities in a bat-wing pattern, consistent with severe pulmonary edema.",
        ])
        return s, "severe pulmonary edema"
    if f.name == "emphysema":
        if sev == "mild":
            s = _pick(rng, ["Mild hyperinflation with flattening of the hemidiaphragms, compatible with emphysema.",
                            "The lungs are mildly hyperexpanded, consistent with emphysema."])
        elif sev == "moderate":
            s = _pick(rng, ["Hyperexpanded lungs with flattened hemidiaphragms and attenuated peripheral vessels, consistent with emphysema.",
                            "Moderate emphysema with hyperinflation and a few apical bullae."])
        else:
            s = _pick(rng, ["Severe emphysema with marked hyperinflation, flat hemidiaphragms and multiple bullae.",
                            "Marked hyperinflation and bullous change, consistent with severe emphysema."])
        return s, f"{sev or 'mild'} emphysema"
    raise ValueError(f"finding name must be one of {FINDINGS}, got {f.name!r}")


_NEG = {
    "cardiomegaly": ("Heart size is normal.", "The cardiomediastinal silhouette is within normal limits.",
                     "Normal heart size.", "The cardiac silhouette is not enlarged.", "No cardiomegaly."),
    "pleural_effusion": ("No pleural effusion.", "No effusion.", "The costophrenic angles are sharp.",
                         "There is no pleural effusion."),
    "pneumothorax": ("No pneumothorax.", "There is no pneumothorax.", "No evidence of pneumothorax."),
    "consolidation": ("No focal consolidation.", "There is no consolidation.", "No airspace consolidation."),
    "nodule": ("No pulmonary nodules.", "No suspicious pulmonary nodule."),
    "mass": ("No mass is identified.", "No pulmonary mass."),
    "atelectasis": ("No atelectasis.",),
    "edema": ("No pulmonary edema.", "No vascular congestion or edema.", "There is no pulmonary edema."),
    "emphysema": ("No hyperinflation.", "The lungs are not hyperinflated."),
}
_NEG_PAIRS = ("No pneumothorax or pleural effusion.", "No pleural effusion or pneumothorax.",
              "There is no pneumothorax, pleural effusion, or focal consolidation.",
              "No focal consolidation, effusion, or pneumothorax.")
_PAIR_NAMES = {"pneumothorax", "pleural_effusion", "consolidation"}
_CLEAR_LUNGS = ("The lungs are clear.", "Lungs are clear bilaterally.", "The lungs are well expanded and clear.")
_NORMAL_IMPRESSION = ("No acute cardiopulmonary process.", "No acute cardiopulmonary abnormality.",
                      "Normal chest radiograph.", "No acute intrathoracic process.")
_OSSEOUS = ("No acute osseous abnormality.", "The osseous structures are unremarkable.",
            "Visualized bones are intact.", "")
_OPENERS = ("", "", "Frontal view of the chest. ", "PA view of the chest. ", "Single frontal radiograph of the chest. ")
_LUNG_FINDINGS = {"consolidation", "nodule", "mass", "atelectasis", "edema", "emphysema"}


# Sign-only wording for findings whose name is withheld (the unseen-class experiment: the
# name never appears in training reports, only what it looks like).
_SIGNS_ONLY = {
    "emphysema": {
        "mild": ("Mild hyperinflation with flattening of the hemidiaphragms.", "The lungs are mildly hyperexpanded."),
        "moderate": ("Hyperexpanded lungs with flattened hemidiaphragms and attenuated peripheral vessels.",
                     "Moderate hyperinflation with a few apical bullae."),
        "severe": ("Marked hyperinflation, flat hemidiaphragms and multiple bullae.",
                   "Marked hyperinflation and bullous change."),
    },
}


def _signs_only(f: Finding, rng: np.random.Generator) -> tuple[str, str]:
    sev = f.severity or "mild"
    sentence = _pick(rng, _SIGNS_ONLY[f.name][sev])
    word = {"mild": "mild", "moderate": "moderate", "severe": "marked"}[sev]
    return sentence, f"{word} hyperinflation"


def write_report(findings: Sequence[Finding], *, seed: int = 0, withhold: Sequence[str] = ()) -> str:
    """Report text for `findings` (empty = normal study); deterministic given `seed`.

    `withhold`: finding names that must never appear in the text; such findings are described
    by their visual signs only (supported: the keys of _SIGNS_ONLY).

    Format::

        FINDINGS: <sentences>

        IMPRESSION: <summary>
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(seed) >> 32, 0xEE]))
    unsupported = sorted(set(withhold) - set(_SIGNS_ONLY))
    if unsupported:
        raise ValueError(f"withhold: no sign-only wording for {unsupported} (supported: {sorted(_SIGNS_ONLY)})")
    names = {f.name for f in findings}
    positives, summary = [], []
    for f in findings:
        s, imp = _signs_only(f, rng) if f.name in withhold else _positive(f, rng)
        positives.append(s)
        summary.append(imp)
    order = rng.permutation(len(positives))
    sentences = [positives[i] for i in order]
    summary = [summary[i] for i in order]

    # explicit negatives for some absent findings
    absent = [n for n in FINDINGS if n not in names]
    negatives = []
    if _PAIR_NAMES.isdisjoint(names) and rng.random() < 0.5:
        negatives.append(_pick(rng, _NEG_PAIRS))
        absent = [n for n in absent if n not in _PAIR_NAMES]
    if "cardiomegaly" in absent and rng.random() < 0.7:
        negatives.append(_pick(rng, _NEG["cardiomegaly"]))
        absent.remove("cardiomegaly")
    k = int(rng.integers(0, 4)) if names else int(rng.integers(1, 4))
    for i in rng.permutation(len(absent))[:k]:
        negatives.append(_pick(rng, _NEG[absent[int(i)]]))
    if names.isdisjoint(_LUNG_FINDINGS) and rng.random() < 0.8:
        negatives.insert(0, _pick(rng, _CLEAR_LUNGS))
    # negation folded into a positive sentence ("... without effusion") now and then
    if positives and "pleural_effusion" not in names and rng.random() < 0.2:
        last = sentences[-1].rstrip(".")
        sentences[-1] = last + ", without pleural effusion."
    body = " ".join(sentences + negatives + [_pick(rng, _OSSEOUS)]).strip()
    body = _pick(rng, _OPENERS) + body

    if summary:
        if len(summary) > 1 and rng.random() < 0.5:
            imp = " ".join(f"{i + 1}. {_cap(s)}." for i, s in enumerate(summary))
        else:
            imp = _cap("; ".join(summary)) + "."
        if "pneumothorax" not in names and rng.random() < 0.3:
            imp += " No pneumothorax."
    else:
        imp = _pick(rng, _NORMAL_IMPRESSION)
    return f"FINDINGS: {body}\n\nIMPRESSION: {imp}"
