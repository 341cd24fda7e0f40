"""Seeded phantom frontal chest radiographs with multi-label findings and a free-text report.

No real labelled radiographs can be downloaded in this project, so it draws its own. Each
image is rendered analytically (numpy only, vectorised) as an attenuation map in *patient
coordinates* and then passed through a site-specific acquisition: field of view, rotation,
tone curve, blur, noise, collimation and a side marker.

Anatomy: body and shoulders, two lung fields (apex, lateral chest wall, diaphragm domes,
costophrenic angles), heart and mediastinum with aortic knob, trachea and main bronchi, hila
with radiating vascular markings, posterior and anterior ribs, clavicles, spine, gastric
bubble, optional breast shadows and arms.

Findings are *shapes and textures*, never a global intensity shift, so that a histogram
baseline cannot solve the task (see benchmarks/phantom_fairness.py and docs/PHANTOMS.md):
cardiomegaly (cardiothoracic ratio), pleural effusion (meniscus, blunted angle), pneumothorax
(visceral pleural line, absent markings), consolidation (patchy airspace opacity with air
bronchograms), nodule (< 3 cm round opacity), mass (> 3 cm lobulated opacity), atelectasis
(plate-like bands, elevated hemidiaphragm, lobar collapse), edema (Kerley lines, perihilar
haze, upper-lobe diversion), emphysema (flat low diaphragms, narrow heart, bullae, pruned
vessels).

Conventions: image x grows to the image right, which is the *patient's left* (PA view).
Patient coordinates u, v span about [-1, 1]; v grows downwards.

Determinism: every image depends only on (seed, index, site, size). Anatomy and findings
depend on (seed, index) only, so the same case index rendered at two sites is the same
patient; the acquisition depends on the site as well. Independent random streams per part
(anatomy, findings, each finding's rendering, acquisition, noise) mean that removing one
finding with `generate_case(..., findings=[...])` leaves everything else unchanged.

Layout (one job per module):
    findings/      the findings table FINDING_SPECS: one module per finding (anatomy effect,
                   drawing, report wording, labeler patterns); reports and labeler read it too
    sampling.py    which findings a case has (clinical co-occurrence prior)
    patient.py     the patient's anatomy parameters and lung-field geometry
    anatomy.py     drawing the normal anatomy (body, lungs, heart, vessels, mediastinum, bones)
    canvas.py      patient coordinates on the pixel grid; the layers findings draw into
    render.py      one image: anatomy + findings in a fixed order, then the acquisition
    acquisition.py site styles (SITES), placement, tone curve, blur, noise, collimation, marker
    generate.py    generate_case / generate_cases
    model.py       Finding, PhantomCase, labels
    storage.py     to_stored / from_stored (DICOM pixel values)
    wording.py     report vocabulary shared by the findings' sentences
    seeding.py, numeric.py: random streams; blurs, noise fields, soft masks

Public API:
    FINDINGS, LABELS, SEVERITIES, LATERALITIES, ZONES, SITES, FINDING_SPECS
    Finding, SiteStyle, PhantomCase, FindingSpec
    case_seed(seed, index) -> int
    sample_findings(index, *, seed=0) -> list[Finding]
    generate_case(index, *, seed=0, site="site_a", size=256, findings=None) -> PhantomCase
    generate_cases(n, *, seed=0, sites=("site_a",), size=256, start=0) -> Iterator[PhantomCase]
    labels_from_findings(findings) -> dict[str, int]
    to_stored(image, bits=12, monochrome="MONOCHROME2") -> (uint16 array, center, width)
    from_stored(stored, center, width, monochrome) -> float32 image (inverse of to_stored)
"""

from __future__ import annotations

from radz_train.data.phantom.acquisition import SITES, SiteStyle
from radz_train.data.phantom.findings import FINDING_SPECS, FINDINGS, LABELS, FindingSpec
from radz_train.data.phantom.generate import generate_case, generate_cases
from radz_train.data.phantom.model import LATERALITIES, SEVERITIES, ZONES, Finding, PhantomCase, labels_from_findings
from radz_train.data.phantom.sampling import sample_findings
from radz_train.data.phantom.seeding import case_seed
from radz_train.data.phantom.storage import from_stored, to_stored

__all__ = [
    "FINDINGS",
    "FINDING_SPECS",
    "LABELS",
    "LATERALITIES",
    "SEVERITIES",
    "SITES",
    "ZONES",
    "Finding",
    "FindingSpec",
    "PhantomCase",
    "SiteStyle",
    "case_seed",
    "from_stored",
    "generate_case",
    "generate_cases",
    "labels_from_findings",
    "sample_findings",
    "to_stored",
]
