"""Tiny copies of the public chest X-ray datasets in their published layouts, built in tmp_path.

Each `make_<dataset>(tmp_path)` writes a handful of rows with the real file names, headers
and folder trees (tiny real PNG / JPEG / DICOM images) and returns the folder to load. The
rows exercise what the adapters must get right: uncertain and blank labels, pipe-separated
and Python-list labels, several rows per image, " -1" RLEs, gzipped CSVs, report sections.
Nothing binary is committed.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "write_png",
    "write_jpeg",
    "write_dicom",
    "write_csv",
    "make_mimic_cxr",
    "make_chexpert",
    "make_chestxray14",
    "make_rsna_pneumonia",
    "make_siim_acr",
    "make_covidx",
    "make_padchest",
    "CHEXPERT_HEADER_LABELS",
]

CHEXPERT_HEADER_LABELS = [
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
]


# ------------------------------------------------------------------------------ files


def _pixels(seed: int, dtype=np.uint8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    high = 255 if dtype == np.uint8 else 4095
    return rng.integers(0, high, size=(8, 8)).astype(dtype)


def write_png(path: Path, seed: int = 0, bits: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = _pixels(seed, np.uint8 if bits == 8 else np.uint16)
    Image.fromarray(array).save(path)
    return path


def write_jpeg(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_pixels(seed)).save(path, format="JPEG")
    return path


def write_dicom(path: Path, seed: int = 0) -> Path:
    """A minimal 8x8 12-bit CR image, valid DICOM Part 10."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    path.parent.mkdir(parents=True, exist_ok=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.Rows, ds.Columns = 8, 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = _pixels(seed, np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def write_csv(path: Path, header: list[str], rows: list[list], *, gz: bool = False) -> Path:
    """A CSV as pandas/the publishers write it (quoted where needed); gzipped if `gz`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(buffer.getvalue().encode("utf-8")))
    else:
        path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------ MIMIC-CXR-JPG

MIMIC_REPORT_FULL = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___F with new onset ascites  // eval for infection

 COMPARISON:  None.

 FINDINGS:

 There is no focal consolidation, pleural effusion or pneumothorax.  The heart
 is mildly enlarged. Vascular congestion, possibly mild edema.

 IMPRESSION:

 Mild cardiomegaly.  Possible mild pulmonary edema.
"""
MIMIC_REPORT_IMPRESSION_ONLY = """                                 FINAL REPORT
 INDICATION:  Chest pain.

 IMPRESSION:  No acute cardiopulmonary process.
"""
MIMIC_REPORT_NO_SECTIONS = """                                 FINAL REPORT
 PORTABLE CHEST RADIOGRAPH

 Right apical pneumothorax is new. Endotracheal tube terminates 4 cm above the carina.
 Findings were discussed with the referring physician.
"""


def make_mimic_cxr(tmp: Path) -> Path:
    """4 images of 3 studies: train (PA + LATERAL), validate (AP), test (PA).

    Study 50414267: Cardiomegaly 1, Edema -1 (uncertain), Pleural Effusion 0, rest blank.
    Study 57375967: No Finding 1.  Study 53000001: Pneumothorax 1, Support Devices -1.
    The split CSV is gzipped, as PhysioNet ships it.
    """
    root = tmp / "mimic-cxr-jpg" / "2.0.0"
    images = [  # dicom_id, subject, study, split, view
        ("02aa804e-bde0afdd-112c0b34-7bc16630-4e384014", "10000032", "50414267", "train", "PA"),
        ("174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962", "10000032", "50414267", "train", "LATERAL"),
        ("2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab", "10000764", "57375967", "validate", "AP"),
        ("68b5c4b1-227d0485-9cc38c3f-7b84ab51-4b472714", "11000011", "53000001", "test", "PA"),
    ]
    write_csv(
        root / "mimic-cxr-2.0.0-split.csv",
        ["dicom_id", "study_id", "subject_id", "split"],
        [[d, st, su, sp] for d, su, st, sp, _ in images],
        gz=True,
    )
    write_csv(
        root / "mimic-cxr-2.0.0-metadata.csv",
        [
            "dicom_id",
            "subject_id",
            "study_id",
            "PerformedProcedureStepDescription",
            "ViewPosition",
            "Rows",
            "Columns",
            "StudyDate",
            "StudyTime",
            "ProcedureCodeSequence_CodeMeaning",
            "ViewCodeSequence_CodeMeaning",
            "PatientOrientationCodeSequence_CodeMeaning",
        ],
        [
            [
                d,
                su,
                st,
                "CHEST (PA AND LAT)",
                v,
                3056,
                2544,
                21800506,
                213014.531,
                "CHEST (PA AND LAT)",
                "postero-anterior",
                "Erect",
            ]
            for d, su, st, _, v in images
        ],
    )

    def labels(**values) -> list:
        return [values.get(c.replace(" ", "_"), "") for c in CHEXPERT_HEADER_LABELS]

    write_csv(
        root / "mimic-cxr-2.0.0-chexpert.csv",
        ["subject_id", "study_id", *CHEXPERT_HEADER_LABELS],
        [
            ["10000032", "50414267", *labels(Cardiomegaly="1.0", Edema="-1.0", Pleural_Effusion="0.0")],
            ["10000764", "57375967", *labels(No_Finding="1.0")],
            ["11000011", "53000001", *labels(Pneumothorax="1.0", Support_Devices="-1.0")],
        ],
    )
    for i, (dicom_id, subject, study, _split, _view) in enumerate(images):
        write_jpeg(root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom_id}.jpg", seed=i)
    reports = {
        "50414267": ("10000032", MIMIC_REPORT_FULL),
        "57375967": ("10000764", MIMIC_REPORT_IMPRESSION_ONLY),
        "53000001": ("11000011", MIMIC_REPORT_NO_SECTIONS),
    }
    for study, (subject, text) in reports.items():
        (root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt").write_text(text)
    return root


# ------------------------------------------------------------------------------ CheXpert


def make_chexpert(tmp: Path, folder: str = "CheXpert-v1.0-small") -> Path:
    """train.csv: 4 images (one lateral) of 3 patients; valid.csv: 2 images, 0/1 only."""
    root = tmp / folder
    header = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_HEADER_LABELS]

    def row(rel, sex, age, view, appa, **values):
        return [
            f"{folder}/{rel}",
            sex,
            age,
            view,
            appa,
            *[values.get(c.replace(" ", "_"), "") for c in CHEXPERT_HEADER_LABELS],
        ]

    train = [
        row(
            "train/patient00001/study1/view1_frontal.jpg",
            "Female",
            68,
            "Frontal",
            "AP",
            Cardiomegaly="1.0",
            Edema="-1.0",
            Pleural_Effusion="0.0",
            Support_Devices="1.0",
        ),
        row(
            "train/patient00001/study1/view2_lateral.jpg",
            "Female",
            68,
            "Lateral",
            "",
            Cardiomegaly="1.0",
            Edema="-1.0",
            Pleural_Effusion="0.0",
            Support_Devices="1.0",
        ),
        row("train/patient00002/study1/view1_frontal.jpg", "Male", 87, "Frontal", "PA", No_Finding="1.0"),
        row(
            "train/patient00003/study2/view1_frontal.jpg",
            "Male",
            41,
            "Frontal",
            "AP",
            Atelectasis="-1.0",
            Consolidation="0.0",
            Pneumothorax="1.0",
            Lung_Opacity="1.0",
        ),
    ]
    valid = [
        row(
            "valid/patient64541/study1/view1_frontal.jpg",
            "Male",
            73,
            "Frontal",
            "AP",
            **{c.replace(" ", "_"): "0.0" for c in CHEXPERT_HEADER_LABELS},
        ),
        row(
            "valid/patient64542/study1/view1_frontal.jpg",
            "Male",
            70,
            "Frontal",
            "PA",
            **{
                **{c.replace(" ", "_"): "0.0" for c in CHEXPERT_HEADER_LABELS},
                "Edema": "1.0",
                "Pleural_Effusion": "1.0",
            },
        ),
    ]
    write_csv(root / "train.csv", header, train)
    write_csv(root / "valid.csv", header, valid)
    for i, r in enumerate(train + valid):
        write_jpeg(root / r[0].split("/", 1)[1], seed=i)
    return root


# ------------------------------------------------------------------------------ ChestX-ray14

NIH_HEADER = [
    "Image Index",
    "Finding Labels",
    "Follow-up #",
    "Patient ID",
    "Patient Age",
    "Patient Gender",
    "View Position",
    "OriginalImage[Width",
    "Height]",
    "OriginalImagePixelSpacing[x",
    "y]",
    "",
]


def make_chestxray14(tmp: Path, flat: bool = False) -> Path:
    """5 images of 3 patients in images_001/images and images_002/images (or a flat images/),
    with the official train_val_list.txt and test_list.txt."""
    root = tmp / "ChestXray-NIHCC"
    rows = [
        ["00000001_000.png", "Cardiomegaly", 0, 1, 58, "M", "PA", 2682, 2749, 0.143, 0.143, ""],
        ["00000001_001.png", "Cardiomegaly|Emphysema", 1, 1, 58, "M", "PA", 2894, 2729, 0.143, 0.143, ""],
        ["00000002_000.png", "No Finding", 0, 2, 81, "M", "PA", 2500, 2048, 0.171, 0.171, ""],
        ["00000003_000.png", "Effusion|Pleural_Thickening|Hernia", 0, 3, 76, "F", "AP", 2048, 2500, 0.168, 0.168, ""],
        ["00000003_001.png", "Infiltration", 1, 3, 77, "F", "AP", 2048, 2500, 0.168, 0.168, ""],
    ]
    write_csv(root / "Data_Entry_2017.csv", NIH_HEADER, rows)
    (root / "train_val_list.txt").write_text("00000001_000.png\n00000001_001.png\n00000002_000.png\n")
    (root / "test_list.txt").write_text("00000003_000.png\n00000003_001.png\n")
    for i, r in enumerate(rows):
        folder = root / "images" if flat else root / f"images_00{1 + i // 3}" / "images"
        write_png(folder / r[0], seed=i)
    return root


# ------------------------------------------------------------------------------ RSNA


def make_rsna_pneumonia(tmp: Path) -> Path:
    """3 images: two boxes (positive), no box (negative), one box (positive)."""
    root = tmp / "rsna-pneumonia-detection-challenge"
    ids = [
        "00436515-870c-4b36-a041-de91049b9ab4",
        "0004cfab-14fd-4e49-80ba-63a80b6bddd6",
        "00313ee0-9eaa-42f4-b0ab-c148ed3241cd",
    ]
    write_csv(
        root / "stage_2_train_labels.csv",
        ["patientId", "x", "y", "width", "height", "Target"],
        [
            [ids[0], 264.0, 152.0, 213.0, 379.0, 1],
            [ids[1], "", "", "", "", 0],
            [ids[0], 562.0, 152.0, 256.0, 453.0, 1],
            [ids[2], 316.0, 318.0, 170.0, 478.0, 1],
        ],
    )
    write_csv(
        root / "stage_2_detailed_class_info.csv",
        ["patientId", "class"],
        [
            [ids[0], "Lung Opacity"],
            [ids[1], "No Lung Opacity / Not Normal"],
            [ids[0], "Lung Opacity"],
            [ids[2], "Lung Opacity"],
        ],
    )
    for i, pid in enumerate(ids):
        write_dicom(root / "stage_2_train_images" / f"{pid}.dcm", seed=i)
    return root


# ------------------------------------------------------------------------------ SIIM-ACR


def make_siim_acr(tmp: Path, header: str = "ImageId, EncodedPixels") -> Path:
    """3 labelled images (negative ' -1', positive with two masks, positive with one) and one
    DICOM without a label row, under dicom-images-train/STUDY/SERIES/."""
    root = tmp / "siim"
    uid = "1.2.276.0.7230010.3.1.{}.8323329.{}.1517875162.{}"
    images = [uid.format(4, 1000 + i, 500000 + i) for i in range(4)]
    lines = [
        header,
        f"{images[0]}, -1",
        f"{images[1]}, 387620 23 996 33 986 43",
        f"{images[1]}, 1 5 1019 6",
        f"{images[2]}, 209126 1 1019 6 1018 8",
    ]
    root.mkdir(parents=True)
    (root / "train-rle.csv").write_text("\n".join(lines) + "\n")
    for i, image_id in enumerate(images):
        study, series = uid.format(2, 1000 + i, 500000 + i), uid.format(3, 1000 + i, 500000 + i)
        write_dicom(root / "dicom-images-train" / study / series / f"{image_id}.dcm", seed=i)
    return root


# ------------------------------------------------------------------------------ COVIDx


def make_covidx(tmp: Path, version: str = "binary") -> Path:
    """version "binary": train.txt / test.txt, 4 columns, positive/negative (COVIDx CXR-3B).
    version "three-class": train_COVIDx3.txt / test_COVIDx3.txt, 3 columns,
    normal/pneumonia/COVID-19 (COVIDx up to v5); one filename contains a space."""
    root = tmp / f"covidx-{version}"
    if version == "binary":
        files = {
            "train.txt": [
                "5 ARDSSevere.png negative cohen",
                "ANON56 CR.1.2.840.113564.1722810170.png negative actmed",
                "419639-003251 MIDRC-RICORD-1C-419639-003251-46647-0.png positive ricord",
            ],
            "test.txt": [
                "SITE2-000265 MIDRC-RICORD-1C-SITE2-000265-99793-1.png positive ricord",
                "47c78742-4998-4878-aec4-37b11b1354ac 47c78742-4998-4878-aec4-37b11b1354ac.png negative rsna",
            ],
        }
    else:
        files = {
            "train_COVIDx3.txt": [
                "8 SARS-10.1148rg.242035193-g04mr34g05x-Fig5-day9.jpeg pneumonia",
                "a1 covid case 1.png COVID-19",
                "b2 b2.png normal",
            ],
            "test_COVIDx3.txt": ["c3 c3.png COVID-19", "d4 d4.png normal"],
        }
    root.mkdir(parents=True)
    for name, lines in files.items():
        (root / name).write_text("\n".join(lines) + "\n")
        split = "train" if name.startswith("train") else "test"
        for i, line in enumerate(lines):
            tokens = line.split()
            filename = " ".join(tokens[1:-2] if version == "binary" else tokens[1:-1])
            write_png(root / split / filename, seed=i)
    return root


# ------------------------------------------------------------------------------ PadChest

PADCHEST_CSV = "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv"


def make_padchest(tmp: Path) -> Path:
    """6 images in the numbered zip folders: normal; two findings (one with a stray leading
    space); a lateral; an 'exclude'-only image; an empty label list; a missing Labels cell."""
    root = tmp / "padchest"
    header = [
        "ImageID",
        "ImageDir",
        "StudyDate_DICOM",
        "StudyID",
        "PatientID",
        "PatientBirth",
        "PatientSex_DICOM",
        "ViewPosition_DICOM",
        "Projection",
        "MethodProjection",
        "Pediatric",
        "Modality_DICOM",
        "ReportID",
        "Report",
        "MethodLabel",
        "Labels",
        "Localizations",
    ]

    def row(n, image_dir, projection, labels, report="sin hallazgos"):
        image = f"2168401113669640138295431665120133381357{n:05d}_02-094-102.png"
        return [
            image,
            image_dir,
            20140915,
            f"study{n // 2}",
            f"patient{n // 2}",
            1950,
            "M",
            "POSTEROANTERIOR",
            projection,
            "Manual review of DICOM fields",
            "No",
            "CR",
            4000 + n,
            report,
            "Physician",
            labels,
            "[]",
        ]

    rows = [
        row(0, 0, "PA", "['normal']", "sin alteraciones significativas ."),
        row(
            1,
            0,
            "PA",
            "['pleural effusion', ' cardiomegaly']",
            "derrame pleural derecho.\ncardiomegalia , sin otros hallazgos .",
        ),
        row(2, 1, "L", "['pleural effusion']"),
        row(3, 1, "AP_horizontal", "['exclude']"),
        row(4, 2, "AP", "['']"),
        row(5, 2, "PA", ""),
    ]
    write_csv(root / PADCHEST_CSV, header, rows)
    for i, r in enumerate(rows):
        write_png(root / str(r[1]) / r[0], seed=i, bits=16)
    return root
