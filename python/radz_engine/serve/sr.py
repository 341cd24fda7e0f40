"""The DICOM Comprehensive SR that answers one scored radiograph (highdicom).

Content tree (TID 2000-like "Diagnostic Imaging Report"):

    CONTAINER (18748-4, LN, "Diagnostic Imaging Report")
      HAS OBS CONTEXT  TEXT  (111001, DCM, "Algorithm Name")     model name
      HAS OBS CONTEXT  TEXT  (111003, DCM, "Algorithm Version")  bundle version / hash
      CONTAINS         IMAGE (121112, DCM, "Source of Measurement")  the scored instance
      CONTAINS         CONTAINER (<finding>, 99RADZ)  one per class:
          CONTAINS  NUM  (probability, 99RADZ)  calibrated probability, unit {ratio}
          CONTAINS  NUM  (threshold, 99RADZ)    the class's operating point
          CONTAINS  CODE (call, 99RADZ)         (373066001, SCT, "Yes") | (373067005, SCT, "No")

Findings use the private coding scheme 99RADZ (code value = the bundle's class name): a mapping
to SNOMED CT needs clinical review and is not made here. Same Study Instance UID as the source
(highdicom copies patient and study from the evidence), a new series. The SR's SOP Instance
UID is derived from the source SOP Instance UID and the model, so re-scoring or re-sending the
same instance gives the same SR and the PACS keeps one.
"""

from __future__ import annotations

import hashlib
import uuid

__all__ = ["FINDING_SCHEME", "build_sr", "sr_uids"]

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


def build_sr(source, result, model_name: str, model_version: str, thresholds: dict, manufacturer: str = "radz_engine"):
    """The Comprehensive SR (a pydicom Dataset) for `result` (a radz_engine Result) of `source`
    (the received pydicom Dataset). `thresholds`: {class: threshold or None (never positive)}."""
    import highdicom as hd
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
    root = hd.sr.ContainerContentItem(Code("18748-4", "LN", "Diagnostic Imaging Report"))
    root.ContentSequence = hd.sr.ContentSequence(items, is_root=False)
    uids = sr_uids(str(source.SOPInstanceUID), str(source.SeriesInstanceUID), f"{model_name}/{model_version}")
    return hd.sr.ComprehensiveSR(
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
        series_description=f"radz zero-shot findings ({model_name})"[:64],
    )
