"""MIMIC-CXR-JPG 2.x images and CheXpert labels, with the reports of MIMIC-CXR.

Layout as distributed on PhysioNet (MIMIC-CXR-JPG 2.0.0 / 2.1.0; the CSVs keep the 2.0.0 name
in both and are shipped gzipped, so `name.csv` and `name.csv.gz` are both read):

    mimic-cxr-2.0.0-split.csv     dicom_id, study_id, subject_id, split (train/validate/test)
    mimic-cxr-2.0.0-chexpert.csv  subject_id, study_id, the 14 CheXpert observations
                                  (1.0 / 0.0 / -1.0 uncertain / blank), one row per study
    mimic-cxr-2.0.0-metadata.csv  dicom_id, subject_id, study_id, ViewPosition (PA/AP/LATERAL/
                                  LL/...), Rows, Columns, StudyDate, ... (needed for frontal_only)
    files/pXX/pSUBJECT/sSTUDY/DICOM_ID.jpg   XX = first two digits of the subject id

Reports come from MIMIC-CXR (mimic-cxr-reports.zip), one free-text file per study at
`files/pXX/pSUBJECT/sSTUDY.txt`; extracted into the same root they sit beside the study
folders. The FINDINGS and IMPRESSION sections are kept (the paper trains on both) and written
as "FINDINGS: ...\n\nIMPRESSION: ...", the format of the phantom reports. A report with
neither section falls back to its last paragraph, as MIMIC-CXR's own section splitter does.

One Record per image (dicom_id); labels are per study, so all images of a study share them.
"""

from __future__ import annotations

import re
from pathlib import Path

from radz_train.data.datasets.base import (
    ChestDataset,
    DatasetLayoutError,
    Record,
    find_file,
    normalize_split,
    parse_label_value,
    read_table,
    select_records,
)
from radz_train.data.datasets.chexpert import CHEXPERT_CLASSES, CHEXPERT_PROMPTS

__all__ = ["MimicCxr", "parse_report_sections", "report_text", "FRONTAL_VIEWS"]

SPLIT_CSV = "mimic-cxr-2.0.0-split.csv"
CHEXPERT_CSV = "mimic-cxr-2.0.0-chexpert.csv"
METADATA_CSV = "mimic-cxr-2.0.0-metadata.csv"

#: ViewPosition values that are frontal projections.
FRONTAL_VIEWS = frozenset({"PA", "AP"})

# A section header: an upper-case phrase at the start of a line followed by a colon
# ("FINDINGS:", "IMPRESSION:", "PA AND LATERAL VIEWS OF THE CHEST:", "WET READ:").
_HEADER = re.compile(r"^[ \t]*([A-Z][A-Z0-9 ,&/()\-]*?)[ \t]*:", re.MULTILINE)
_FINDINGS = {"FINDINGS", "FINDING"}
_IMPRESSION = {
    "IMPRESSION",
    "IMPRESSIONS",
    "CONCLUSION",
    "CONCLUSIONS",
    "FINDINGS AND IMPRESSION",
    "FINDINGS/IMPRESSION",
}


def _clean(text: str) -> str:
    return " ".join(text.split())


def parse_report_sections(text: str) -> dict[str, str]:
    """The sections of a MIMIC-CXR report: {'findings': ..., 'impression': ...} where present.

    Section text runs from the header to the next header. Reports with neither section give
    {'fallback': <last paragraph>} (an empty dict for an empty report).
    """
    headers = list(_HEADER.finditer(text))
    sections: dict[str, str] = {}
    for i, match in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        body = _clean(text[match.end() : end])
        name = " ".join(match.group(1).split())
        key = "findings" if name in _FINDINGS else "impression" if name in _IMPRESSION else None
        if key and body:
            # a repeated section (an addendum's IMPRESSION) is appended, not dropped
            sections[key] = f"{sections[key]} {body}" if key in sections else body
    if sections:
        return sections
    paragraphs = [_clean(p) for p in re.split(r"\n[ \t]*\n", text) if _clean(p)]
    return {"fallback": paragraphs[-1]} if paragraphs else {}


def report_text(sections: dict[str, str]) -> str | None:
    """'FINDINGS: ...\\n\\nIMPRESSION: ...' from parsed sections (None when there are none)."""
    parts = []
    if "findings" in sections:
        parts.append(f"FINDINGS: {sections['findings']}")
    if "impression" in sections:
        parts.append(f"IMPRESSION: {sections['impression']}")
    if not parts and "fallback" in sections:
        parts.append(sections["fallback"])
    return "\n\n".join(parts) or None


def study_dir(files_root: Path, subject_id: str, study_id: str) -> Path:
    """files/pXX/pSUBJECT/sSTUDY (XX = the subject id's first two digits)."""
    return files_root / f"p{subject_id[:2]}" / f"p{subject_id}" / f"s{study_id}"


def _id(value: str) -> str:
    """Ids as digits: '10000032' (some exports write '10000032.0')."""
    value = value.strip()
    return value[:-2] if value.endswith(".0") else value


class MimicCxr(ChestDataset):
    """MIMIC-CXR-JPG images with the CheXpert labels and the findings + impression text.

    root: the MIMIC-CXR-JPG folder (the one holding the CSVs and files/). split: None, "train",
    "val" ("validate") or "test" from the official split file. frontal_only: keep PA/AP images
    (reads the metadata CSV). reports_root: where files/pXX/... .txt reports live (default
    root); reports=False skips reading them. check_images / skip_missing: see `select_records`.
    """

    name = "mimic_cxr"

    def __init__(
        self,
        root: Path | str,
        split: str | None = None,
        *,
        frontal_only: bool = False,
        reports: bool = True,
        reports_root: Path | str | None = None,
        check_images: bool = True,
        skip_missing: bool = False,
    ) -> None:
        root = Path(root)
        reports_root = Path(reports_root) if reports_root is not None else root
        split_csv = find_file(self.name, root, [SPLIT_CSV], "the official split file")
        labels_csv = find_file(self.name, root, [CHEXPERT_CSV], "the CheXpert label file")
        views = self._read_views(root, required=frontal_only)
        labels = self._read_labels(labels_csv)
        wanted = normalize_split(split)

        records: list[Record] = []
        report_cache: dict[str, tuple[str | None, dict]] = {}
        columns = ["dicom_id", "study_id", "subject_id", "split"]
        for line, row in enumerate(read_table(self.name, split_csv, columns), start=2):
            dicom_id, study, subject = row["dicom_id"].strip(), _id(row["study_id"]), _id(row["subject_id"])
            try:
                row_split = normalize_split(row["split"])
            except ValueError:
                raise DatasetLayoutError(
                    self.name,
                    f"{split_csv.name} line {line}: split {row['split']!r} is not train/validate/test",
                    path=split_csv,
                    column="split",
                ) from None
            if wanted is not None and row_split != wanted:
                continue
            view = views.get(dicom_id)
            if frontal_only and view not in FRONTAL_VIEWS:
                continue
            folder = study_dir(root / "files", subject, study)
            report, sections = None, {}
            if reports:
                if study not in report_cache:
                    report_cache[study] = self._read_report(reports_root, subject, study)
                report, sections = report_cache[study]
            records.append(
                Record(
                    image_path=folder / f"{dicom_id}.jpg",
                    labels=dict(labels.get(study, {})),
                    report=report,
                    split=row_split,
                    patient_id=subject,
                    study_id=study,
                    meta={"dicom_id": dicom_id, "view": view, "report_sections": sections},
                )
            )
        info = {"reports_found": sum(1 for r in report_cache.values() if r[0] is not None)}
        records = select_records(
            self.name, records, split=None, check_images=check_images, skip_missing=skip_missing, info=info
        )
        super().__init__(self.name, records, CHEXPERT_CLASSES, CHEXPERT_PROMPTS, root=root, info=info)

    def _read_labels(self, path: Path) -> dict[str, dict[str, int]]:
        """study_id -> {class: 1/0/-1}; blank cells stay out of the dict."""
        labels = {}
        for line, row in enumerate(read_table(self.name, path, ["subject_id", "study_id", *CHEXPERT_CLASSES]), start=2):
            study_labels = {}
            for cls in CHEXPERT_CLASSES:
                value = parse_label_value(row[cls], dataset=self.name, where=f"{path.name} line {line} column {cls!r}")
                if value is not None:
                    study_labels[cls] = value
            labels[_id(row["study_id"])] = study_labels
        return labels

    def _read_views(self, root: Path, *, required: bool) -> dict[str, str]:
        """dicom_id -> ViewPosition from the metadata CSV (empty if absent and not required)."""
        if not required and not any((root / n).is_file() for n in (METADATA_CSV, f"{METADATA_CSV}.gz")):
            return {}
        path = find_file(self.name, root, [METADATA_CSV], "the metadata file (ViewPosition, needed for frontal_only)")
        return {
            row["dicom_id"].strip(): row["ViewPosition"].strip().upper()
            for row in read_table(self.name, path, ["dicom_id", "ViewPosition"])
        }

    @staticmethod
    def _read_report(reports_root: Path, subject: str, study: str) -> tuple[str | None, dict]:
        path = study_dir(reports_root / "files", subject, study).with_suffix(".txt")
        if not path.is_file():
            return None, {}
        sections = parse_report_sections(path.read_text(encoding="utf-8", errors="replace"))
        return report_text(sections), sections
