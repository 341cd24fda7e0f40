"""What from the wire may reach a log, the journal, results or an ErrorComment, and how.

Rules (docs/SERVE.md, "Security and privacy"):
  - every value that came from the wire is escaped (control characters, backslashes and
    anything outside printable ASCII become \\n, \\\\, \\xNN, ...) and length-bounded, so it can
    neither forge a log line nor overflow a DICOM LO (`escape`, `error_comment`);
  - an exception message of a third-party library (pydicom, highdicom, a decoder) may quote
    the value it choked on: quoted text is replaced by '<value>' (`describe_error`), and the
    values of the patient and study attributes of the dataset at hand are removed from any
    text (`redact`), so no patient or study value reaches a log, the journal or results;
  - the SR copies the patient and study modules from the source: a value that does not
    conform to its VR (an invalid date, PatientSex 'ZZ', a control character, ...) is left out
    of the SR (the attribute is written empty) rather than blocking it (`clean_header`).
"""

from __future__ import annotations

import logging
import re
import warnings

__all__ = ["escape", "error_comment", "describe_error", "redact", "clean_header", "quiet_third_party_logs"]

# Patient and study attributes (Patient, Patient Study, General Study, Clinical Trial modules,
# and the usual identifying ones): their values never reach a log, the journal or results.
PATIENT_STUDY_KEYWORDS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "OtherPatientIDs",
    "OtherPatientNames",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientSex",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientMotherBirthName",
    "EthnicGroup",
    "PatientComments",
    "AdditionalPatientHistory",
    "MedicalRecordLocator",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "StudyDescription",
    "AccessionNumber",
    "ReferringPhysicianName",
    "PhysiciansOfRecord",
    "NameOfPhysiciansReadingStudy",
    "AdmittingDiagnosesDescription",
    "InstitutionName",
    "InstitutionAddress",
    "OperatorsName",
    "PerformingPhysicianName",
    "RequestingPhysician",
    "SeriesDate",
    "SeriesTime",
    "AcquisitionDate",
    "AcquisitionTime",
    "ContentDate",
    "ContentTime",
    "ClinicalTrialSubjectID",
    "ClinicalTrialSubjectReadingID",
    "ClinicalTrialSponsorName",
    "ClinicalTrialProtocolID",
    "ClinicalTrialSiteID",
    "ClinicalTrialSiteName",
    "ClinicalTrialTimePointID",
)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_SEXES = {"M", "F", "O", ""}


def escape(value, limit: int = 64) -> str:
    """`value` as printable ASCII: control characters, backslashes and non-ASCII escaped
    (\\n, \\\\, \\xNN, \\uNNNN), cut to `limit` characters (then ending in '...')."""
    out = []
    for ch in str(value):
        code = ord(ch)
        if 0x20 <= code < 0x7F and ch != "\\":
            out.append(ch)
        elif ch in "\n\r\t\\":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}[ch])
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        if len(out) > limit:
            break
    text = "".join(out)
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


def error_comment(text: str) -> str:
    """An Error Comment (0000,0902), VR LO: 64 printable characters, no backslash."""
    return escape(text, 64).replace("\\", "/")


def describe_error(error: BaseException, limit: int = 200) -> str:
    """`Type: message` of a library's exception with quoted values replaced, escaped, bounded."""
    message = _QUOTED.sub("'<value>'", str(error))
    return escape(f"{type(error).__name__}: {message}" if message else type(error).__name__, limit)


def redact(text: str, ds=None) -> str:
    """`text` without the values of the patient and study attributes of `ds` (if given)."""
    if ds is None or not text:
        return text
    for keyword in PATIENT_STUDY_KEYWORDS:
        try:
            value = ds.get(keyword)
        except Exception:  # noqa: BLE001 - a value pydicom cannot even convert
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for v in values:
            s = str(v) if v is not None else ""
            if len(s) >= 2:
                for form in {s, escape(s, 10**6)}:
                    text = text.replace(form, "<redacted>")
    return text


def _conforms(element) -> bool:
    from pydicom import config, valuerep
    from pydicom.multival import MultiValue

    vr, value = element.VR, element.value
    if value is None or value == "":
        return True
    for v in value if isinstance(value, list | tuple | MultiValue) else [value]:
        if vr in ("DA", "TM", "DT"):
            if not isinstance(v, valuerep.DA | valuerep.TM | valuerep.DT):
                {"DA": valuerep.DA, "TM": valuerep.TM, "DT": valuerep.DT}[vr](v, validation_mode=config.RAISE)
        elif vr in ("DS", "IS"):
            float(v)
        elif vr in ("AS", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"):
            valuerep.validate_value(vr, str(v), config.RAISE)
            allowed = "\x1b\r\n\t\x0c" if vr in ("LT", "ST", "UT") else "\x1b"
            if any(ord(ch) < 0x20 and ch not in allowed for ch in str(v)):
                raise ValueError("control character")
    return True


def clean_header(ds) -> list[str]:
    """Empty (in place) every patient or study attribute (the ones highdicom copies into the SR)
    whose value does not conform to its VR (or holds a control character), and a PatientSex that
    is not M, F or O: highdicom would refuse to build the SR. Emptied, not deleted: the SR's
    Type 2 attributes stay present and empty. Returns the keywords emptied (never their values)."""
    removed = []
    for keyword in PATIENT_STUDY_KEYWORDS:
        if keyword not in ds:
            continue
        element = ds[keyword]
        try:
            ok = element.VR != "SQ" and _conforms(element)
            if keyword == "PatientSex" and str(element.value or "").strip().upper() not in _SEXES:
                ok = False
        except Exception:  # noqa: BLE001 - any failure to convert or validate: malformed
            ok = False
        if not ok:
            element.value = None
            removed.append(keyword)
    return removed


def quiet_third_party_logs() -> None:
    """pydicom and highdicom log and warn with the values they find malformed (patient names,
    dates, ...), pynetdicom logs identifiers at INFO: keep them out of radz serve's log."""
    import pydicom.config  # noqa: F401 - pydicom sets its logger's level when imported: set ours after

    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    for name in ("pydicom", "highdicom"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", module=r"(pydicom|highdicom)(\.|$)")
