"""The DICOM Comprehensive SR that answers one scored radiograph (highdicom).

Content tree (TID 2000-like "Diagnostic Imaging Report"):

    CONTAINER (18748-4, LN, "Diagnostic Imaging Report")
      HAS OBS CONTEXT  TEXT  (111001, DCM, "Algorithm Name")     the model card's name
      HAS OBS CONTEXT  TEXT  (111003, DCM, "Algorithm Version")  card version + content hash
      HAS OBS CONTEXT  CODE  (121005, DCM, "Observer Type") = Device, then the device observer
                       (TID 1004): UID (derived from the model), Name, Manufacturer, Model Name
      CONTAINS         TEXT  (121106, DCM, "Comment")            the intended-use notice, first,
                                                                 when the card is not cleared for
                                                                 clinical use ("For research use only; ...")
      CONTAINS         IMAGE (121112, DCM, "Source of Measurement")  the scored instance
      CONTAINS         CONTAINER (<finding>, 99RADZ)  one per class:
          CONTAINS  NUM  (probability, 99RADZ)  calibrated probability, unit {ratio}
          CONTAINS  NUM  (threshold, 99RADZ)    the class's operating point
          CONTAINS  CODE (call, 99RADZ)         (373066001, SCT, "Yes") | (373067005, SCT, "No")

Findings use the private coding scheme 99RADZ (code value = the bundle's class name): a mapping
to SNOMED CT needs clinical review and is not made here (every model card says so). The device:
Manufacturer from the card ("manufacturer", default "radz_engine"), Manufacturer's Model Name the
card's name, Software Versions the card's version and content hash. The notice is also the start
of the Series Description ("RESEARCH USE ONLY - NOT FOR DIAGNOSIS: radz findings (default)").
The private scheme is declared in the Coding Scheme Identification Sequence. dciodvfy (dicom3tools)
reports no errors (tests/test_serve.py), only a warning per 99RADZ code (a scheme it cannot know). Same Study Instance UID as the source
(highdicom copies patient and study from the evidence), a new series. The SR's SOP Instance
UID is derived from the source SOP Instance UID and the model, so re-scoring or re-sending the
same instance gives the same SR and the PACS keeps one.
"""

from __future__ import annotations

import hashlib
import uuid

__all__ = ["FINDING_SCHEME", "build_sr", "series_description", "sr_uids"]

FINDING_SCHEME = "99RADZ"
_SERIES_NUMBER = 9901  # radz result series; constant so viewers group them


def _uid(*parts: str) -> str:
    """A deterministic 2.25 UID (from a UUID, as DICOM PS3.5 B.2) of the given parts."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()[:16]
    return f"2.25.{uuid.UUID(bytes=digest, version=4).int}"


def sr_uids(source_sop_uid: str, source_series_uid: str, model_id: str) -> dict:
    """SOP Instance and Series Instance UIDs of the SR answering one source instance."""
    return {
        "sop": _uid("radz-sr", model_id, source_sop_uid),
        "series": _uid("radz-sr-series", model_id, source_series_uid),
    }


_SHORT_NOTICE = {
    "research": "RESEARCH USE ONLY - NOT FOR DIAGNOSIS",
    "clinical-evaluation": "CLINICAL EVALUATION ONLY - NOT FOR DIAGNOSIS",
}


def series_description(model_name: str, intended_use: str | None) -> str:
    """The SR series' description (LO, 64 characters at most): the short notice first, so that
    it shows in every series list even when cut."""
    text = f"radz findings ({model_name})"
    short = _SHORT_NOTICE.get(intended_use or "")
    return (f"{short}: {text}" if short else text)[:64]


def build_sr(
    source,
    result,
    model_name: str,
    model_version: str,
    thresholds: dict,
    manufacturer: str = "radz_engine",
    *,
    notice: str | None = None,
    intended_use: str | None = None,
    software_version: str | None = None,
):
    """The Comprehensive SR (a pydicom Dataset) for `result` (a radz_engine Result) of `source`
    (the received pydicom Dataset). `thresholds`: {class: threshold or None (never positive)}.
    notice / intended_use: the model card's (radz_engine.bundle.card.notice); a notice becomes a
    text item of the content tree and, shortened, the start of the series description."""
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    def private(value: str, meaning: str) -> Code:
        return Code(value[:16], FINDING_SCHEME, meaning[:64])

    rel = hd.sr.RelationshipTypeValues
    yes, no = Code("373066001", "SCT", "Yes"), Code("373067005", "SCT", "No")
    ratio = Code("{ratio}", "UCUM", "ratio")
    items = [
        hd.sr.TextContentItem(
            Code("111001", "DCM", "Algorithm Name"), model_name[:64], relationship_type=rel.HAS_OBS_CONTEXT
        ),
        hd.sr.TextContentItem(
            Code("111003", "DCM", "Algorithm Version"), model_version[:64], relationship_type=rel.HAS_OBS_CONTEXT
        ),
    ]
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=_uid("radz-device", model_name, model_version),
        name=f"radz_engine {model_name}"[:64],
        manufacturer_name=manufacturer[:64],
        model_name=model_name[:64],
    )
    items += hd.sr.ObserverContext(observer_type=codes.DCM.Device, observer_identifying_attributes=device)
    if notice:
        items.append(hd.sr.TextContentItem(Code("121106", "DCM", "Comment"), notice, relationship_type=rel.CONTAINS))
    items += [
        hd.sr.ImageContentItem(
            Code("121112", "DCM", "Source of Measurement"),
            source.SOPClassUID,
            source.SOPInstanceUID,
            relationship_type=rel.CONTAINS,
        ),
    ]
    positives = set(result.positives)
    for name, probability in result.scores.items():
        finding = hd.sr.ContainerContentItem(private(name, name.replace("_", " ")), relationship_type=rel.CONTAINS)
        children = [
            hd.sr.NumContentItem(
                private("probability", "Probability"), float(probability), ratio, relationship_type=rel.CONTAINS
            )
        ]
        threshold = thresholds.get(name)
        if threshold is not None:
            children.append(
                hd.sr.NumContentItem(
                    private("threshold", "Decision threshold"), float(threshold), ratio, relationship_type=rel.CONTAINS
                )
            )
        children.append(
            hd.sr.CodeContentItem(
                private("call", "Finding present"), yes if name in positives else no, relationship_type=rel.CONTAINS
            )
        )
        finding.ContentSequence = hd.sr.ContentSequence(children, is_root=False)
        items.append(finding)
    neighbours = getattr(result, "neighbours", None) or []
    if neighbours:
        # Similar indexed cases (Engine similar_index), named by their row in the index, never by
        # file path: another study's path can carry its patient's name (PACS exports often do).
        similar = hd.sr.ContainerContentItem(
            private("similar", "Similar indexed cases"), relationship_type=rel.CONTAINS
        )
        similar.ContentSequence = hd.sr.ContentSequence(
            [
                hd.sr.TextContentItem(
                    private("similar_case", "Similar case"),
                    f"index case {int(n['id'])}: findings {', '.join(n.get('findings') or []) or 'none'}"
                    f"{'' if n.get('findings_from') == 'labels' else ' (model, unconfirmed)'}; "
                    f"similarity {float(n['similarity']):.3f}",
                    relationship_type=rel.CONTAINS,
                )
                for n in neighbours
            ],
            is_root=False,
        )
        items.append(similar)
    root = hd.sr.ContainerContentItem(Code("18748-4", "LN", "Diagnostic Imaging Report"))
    root.ContentSequence = hd.sr.ContentSequence(items, is_root=False)
    uids = sr_uids(str(source.SOPInstanceUID), str(source.SeriesInstanceUID), f"{model_name}/{model_version}")
    sr = hd.sr.ComprehensiveSR(
        evidence=[source],
        content=root,
        series_instance_uid=uids["series"],
        series_number=_SERIES_NUMBER,
        sop_instance_uid=uids["sop"],
        instance_number=1,
        manufacturer=manufacturer,
        is_complete=True,
        is_final=False,
        is_verified=False,
        series_description=series_description(model_name, intended_use if notice else None),
    )
    from pydicom.dataset import Dataset

    scheme = Dataset()
    scheme.CodingSchemeDesignator = FINDING_SCHEME
    scheme.CodingSchemeName = "radz_engine findings (private; code value = the bundle's class name)"
    scheme.CodingSchemeResponsibleOrganization = "radz_engine project"
    sr.CodingSchemeIdentificationSequence = [scheme]
    sr.ManufacturerModelName = model_name[:64]
    sr.SoftwareVersions = (software_version or model_version)[:64]
    return sr
