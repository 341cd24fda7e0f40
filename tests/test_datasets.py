"""Real-dataset adapters on tiny fixtures in each dataset's published layout (built in tmp_path
by tests/dataset_fixtures.py): records, labels, splits, reports, prompts, and the errors an
incomplete folder gives."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dataset_fixtures as fx
from radz_train.data.datasets import (
    DATASETS,
    UNCERTAIN_POLICIES,
    ChestDataset,
    DatasetLayoutError,
    Record,
    list_datasets,
    load_dataset,
)
from radz_train.data.datasets.mimic_cxr import parse_report_sections, report_text
from radz_train.data.datasets.padchest import parse_label_list


def by_name(ds: ChestDataset, key: str) -> dict[str, Record]:
    """Records keyed by their image file name (or a meta field)."""
    return {(r.meta[key] if key != "file" else r.image_path.name): r for r in ds}


def drop_column(path: Path, column: str) -> None:
    """Rewrite a CSV without one column (the header names it exactly)."""
    import csv

    rows = list(csv.reader(path.read_text().splitlines()))
    j = rows[0].index(column)
    fx.write_csv(
        path, [c for i, c in enumerate(rows[0]) if i != j], [[c for i, c in enumerate(r) if i != j] for r in rows[1:]]
    )


# ------------------------------------------------------------------------------ registry, base


def test_registry_lists_all_seven_datasets():
    assert list_datasets() == sorted(
        ["mimic_cxr", "chexpert", "chestxray14", "rsna_pneumonia", "siim_acr", "covidx", "padchest"]
    )
    assert all(issubclass(cls, ChestDataset) for cls in DATASETS.values())


def test_load_dataset_rejects_unknown_names_and_splits(tmp_path):
    with pytest.raises(KeyError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet", tmp_path)
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        load_dataset("chexpert", tmp_path, split="dev")


def test_load_dataset_accepts_aliases(tmp_path):
    root = fx.make_chestxray14(tmp_path)
    assert load_dataset("NIH", root).name == "chestxray14"
    assert load_dataset("ChestX-ray14", root).name == "chestxray14"


def test_layout_error_is_file_not_found_and_value_error():
    err = DatasetLayoutError("x", "missing train.csv", path="a/train.csv", column=None)
    assert isinstance(err, FileNotFoundError) and isinstance(err, ValueError)
    assert str(err) == "x: missing train.csv" and err.path == Path("a/train.csv")


def make_toy() -> ChestDataset:
    records = [
        Record(Path("a.png"), {"A": 1, "B": -1}, split="train", patient_id="p1"),
        Record(Path("b.png"), {"A": 0}, split="test", patient_id="p2"),
        Record(Path("c.png"), {"B": 1, "Z": 1}, split="train", patient_id="p1"),
    ]
    return ChestDataset("toy", records, ("A", "B"), {"A": "finding a"})


def test_label_matrix_uncertain_policies():
    ds = make_toy()
    assert UNCERTAIN_POLICIES == ("positive", "negative", "ignore")
    pos, classes = ds.label_matrix(uncertain="positive")
    neg, _ = ds.label_matrix(uncertain="negative")
    ign, _ = ds.label_matrix(uncertain="ignore")
    assert classes == ("A", "B")
    np.testing.assert_array_equal(pos, [[1, 1], [0, np.nan], [np.nan, 1]])
    np.testing.assert_array_equal(neg, [[1, 0], [0, np.nan], [np.nan, 1]])
    np.testing.assert_array_equal(ign, [[1, np.nan], [0, np.nan], [np.nan, 1]])
    assert pos.dtype == np.float64
    with pytest.raises(ValueError, match="uncertain must be one of"):
        ds.label_matrix(uncertain="maybe")


def test_summary_split_subset_and_default_prompts():
    ds = make_toy()
    s = ds.summary()
    assert s["records"] == 3 and s["patients"] == 2
    assert s["splits"] == {"train": 2, "test": 1}
    assert s["classes"]["B"] == {"positive": 1, "negative": 0, "uncertain": 1, "blank": 1}
    assert ds.class_prompts == {"A": "finding a", "B": "b"}
    assert len(ds.split("train")) == 2 and ds.split("train").classes == ("A", "B")
    assert [r.image_path.name for r in ds[1:]] == ["b.png", "c.png"]
    assert isinstance(ds[0], Record)


def test_datasets_import_without_torch():
    code = (
        "import sys, radz_train.data.datasets as d; "
        "assert not {'torch', 'pandas'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------ MIMIC-CXR


def test_mimic_records_labels_and_splits(tmp_path):
    ds = load_dataset("mimic_cxr", fx.make_mimic_cxr(tmp_path))
    assert len(ds) == 4 and ds.classes[0] == "No Finding" and len(ds.classes) == 14
    recs = by_name(ds, "dicom_id")
    first = recs["02aa804e-bde0afdd-112c0b34-7bc16630-4e384014"]
    assert first.labels == {"Cardiomegaly": 1, "Edema": -1, "Pleural Effusion": 0}
    assert first.patient_id == "10000032" and first.study_id == "50414267"
    assert first.image_path.relative_to(ds.root).as_posix() == (
        "files/p10/p10000032/s50414267/02aa804e-bde0afdd-112c0b34-7bc16630-4e384014.jpg"
    )
    # labels are per study: both images of the study share them
    assert recs["174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962"].labels == first.labels
    assert {r.split for r in ds} == {"train", "val", "test"}  # "validate" normalised
    assert ds.summary()["splits"] == {"train": 2, "val": 1, "test": 1}
    m, _ = ds.label_matrix(uncertain="positive")
    assert m[0, ds.classes.index("Edema")] == 1 and np.isnan(m[0, ds.classes.index("Fracture")])


def test_mimic_split_and_frontal_filter(tmp_path):
    root = fx.make_mimic_cxr(tmp_path)
    val = load_dataset("mimic_cxr", root, split="validate")
    assert len(val) == 1 and val[0].labels == {"No Finding": 1} and val[0].meta["view"] == "AP"
    frontal = load_dataset("mimic_cxr", root, frontal_only=True)
    assert len(frontal) == 3 and {r.meta["view"] for r in frontal} == {"PA", "AP"}


def test_mimic_reports_findings_and_impression(tmp_path):
    ds = load_dataset("mimic_cxr", fx.make_mimic_cxr(tmp_path))
    reports = {r.study_id: r.report for r in ds}
    assert reports["50414267"] == (
        "FINDINGS: There is no focal consolidation, pleural effusion or pneumothorax. The heart "
        "is mildly enlarged. Vascular congestion, possibly mild edema.\n\n"
        "IMPRESSION: Mild cardiomegaly. Possible mild pulmonary edema."
    )
    assert "INDICATION" not in reports["50414267"] and "ascites" not in reports["50414267"]
    assert reports["57375967"] == "IMPRESSION: No acute cardiopulmonary process."
    assert reports["53000001"].startswith("Right apical pneumothorax is new.")  # last paragraph
    assert ds.info["reports_found"] == 3
    no_reports = load_dataset("mimic_cxr", ds.root, reports=False)
    assert all(r.report is None for r in no_reports)


def test_mimic_reports_root_elsewhere(tmp_path):
    root = fx.make_mimic_cxr(tmp_path)
    other = tmp_path / "mimic-cxr-reports"
    for txt in (root / "files").rglob("*.txt"):
        target = other / txt.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        txt.rename(target)
    assert all(r.report is None for r in load_dataset("mimic_cxr", root))
    assert sum(r.report is not None for r in load_dataset("mimic_cxr", root, reports_root=other)) == 4


def test_parse_report_sections_edge_cases():
    text = (
        "FINDINGS AND IMPRESSION:  No change.\n\nADDENDUM: note\n\nIMPRESSION: Stable.\n"
        "NOTIFICATION: called Dr. ___ at 10:30."
    )
    assert parse_report_sections(text) == {"impression": "No change. Stable."}
    assert parse_report_sections("") == {}
    assert report_text({}) is None
    assert report_text({"findings": "a"}) == "FINDINGS: a"


def test_mimic_missing_files_and_columns(tmp_path):
    root = fx.make_mimic_cxr(tmp_path)
    (root / "mimic-cxr-2.0.0-chexpert.csv").rename(root / "labels.bak")
    with pytest.raises(DatasetLayoutError, match="mimic-cxr-2.0.0-chexpert.csv"):
        load_dataset("mimic_cxr", root)
    (root / "labels.bak").rename(root / "mimic-cxr-2.0.0-chexpert.csv")
    drop_column(root / "mimic-cxr-2.0.0-chexpert.csv", "Edema")
    with pytest.raises(DatasetLayoutError, match="no column 'Edema'") as info:
        load_dataset("mimic_cxr", root)
    assert info.value.column == "Edema"


def test_mimic_frontal_needs_metadata(tmp_path):
    root = fx.make_mimic_cxr(tmp_path)
    (root / "mimic-cxr-2.0.0-metadata.csv").unlink()
    assert len(load_dataset("mimic_cxr", root)) == 4  # not needed without frontal_only
    with pytest.raises(DatasetLayoutError, match=r"ViewPosition.*expected .mimic-cxr-2.0.0-metadata.csv"):
        load_dataset("mimic_cxr", root, frontal_only=True)


def test_mimic_split_file_gz_with_missing_column(tmp_path):
    root = fx.make_mimic_cxr(tmp_path)
    gz = root / "mimic-cxr-2.0.0-split.csv.gz"
    text = gzip.decompress(gz.read_bytes()).decode().replace(",split\n", ",fold\n", 1)
    gz.write_bytes(gzip.compress(text.encode()))
    with pytest.raises(DatasetLayoutError, match=r"split.csv.gz has no column 'split'"):
        load_dataset("mimic_cxr", root)


def test_mimic_missing_images_listed_or_skipped(tmp_path):
    root = fx.make_mimic_cxr(tmp_path)
    gone = next((root / "files").rglob("68b5c4b1*.jpg"))
    gone.unlink()
    with pytest.raises(DatasetLayoutError, match=r"1 of 4 image files .* missing: .*68b5c4b1"):
        load_dataset("mimic_cxr", root)
    skipped = load_dataset("mimic_cxr", root, skip_missing=True)
    assert len(skipped) == 3 and skipped.info["skipped_missing_images"] == 1
    assert len(load_dataset("mimic_cxr", root, check_images=False)) == 4


# ------------------------------------------------------------------------------ CheXpert


def test_chexpert_records_labels_and_paths(tmp_path):
    root = fx.make_chexpert(tmp_path)
    ds = load_dataset("chexpert", root)
    assert len(ds) == 6 and ds.summary()["splits"] == {"train": 4, "val": 2}
    recs = {r.meta["path"]: r for r in ds}
    first = recs["CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg"]
    assert first.labels == {"Cardiomegaly": 1, "Edema": -1, "Pleural Effusion": 0, "Support Devices": 1}
    assert first.patient_id == "patient00001" and first.study_id == "patient00001/study1"
    assert first.image_path == root / "train/patient00001/study1/view1_frontal.jpg"
    assert first.meta["view"] == "Frontal" and first.meta["ap_pa"] == "AP"
    # validation labels are complete 0/1
    for r in ds.split("val"):
        assert len(r.labels) == 14 and set(r.labels.values()) <= {0, 1}


def test_chexpert_parent_folder_renamed_folder_and_filters(tmp_path):
    fx.make_chexpert(tmp_path)
    assert len(load_dataset("chexpert", tmp_path)) == 6  # given the parent folder
    renamed = tmp_path / "my-chexpert"
    (tmp_path / "CheXpert-v1.0-small").rename(renamed)
    assert len(load_dataset("chexpert", renamed)) == 6  # Path's first part is replaced
    assert len(load_dataset("chexpert", renamed, split="val")) == 2
    assert len(load_dataset("chexpert", renamed, frontal_only=True)) == 5


def test_chexpert_competition_labels(tmp_path):
    ds = load_dataset("chexpert", fx.make_chexpert(tmp_path), labels="competition")
    assert ds.classes == ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
    m, _ = ds.label_matrix(uncertain="negative")
    assert m.shape == (6, 5)
    assert all(set(r.labels) <= set(ds.classes) for r in ds)


def test_chexpert_missing_csv_column_and_bad_value(tmp_path):
    root = fx.make_chexpert(tmp_path)
    (root / "valid.csv").unlink()
    assert len(load_dataset("chexpert", root, split="train")) == 4
    with pytest.raises(DatasetLayoutError, match="missing the val label CSV: expected 'valid.csv'"):
        load_dataset("chexpert", root)
    drop_column(root / "train.csv", "Pleural Effusion")
    with pytest.raises(DatasetLayoutError, match="train.csv has no column 'Pleural Effusion'"):
        load_dataset("chexpert", root, split="train")
    root2 = fx.make_chexpert(tmp_path / "b")
    (root2 / "train.csv").write_text((root2 / "train.csv").read_text().replace(",1.0,", ",2,", 1))
    with pytest.raises(DatasetLayoutError, match=r"train.csv line 2 column .* label value '2'"):
        load_dataset("chexpert", root2)


def test_chexpert_missing_image(tmp_path):
    root = fx.make_chexpert(tmp_path)
    (root / "valid/patient64542/study1/view1_frontal.jpg").unlink()
    with pytest.raises(DatasetLayoutError, match="patient64542"):
        load_dataset("chexpert", root)


# ------------------------------------------------------------------------------ ChestX-ray14


def test_chestxray14_pipe_labels_no_finding_and_splits(tmp_path):
    ds = load_dataset("chestxray14", fx.make_chestxray14(tmp_path))
    assert len(ds) == 5 and len(ds.classes) == 14
    recs = by_name(ds, "file")
    multi = recs["00000003_000.png"].labels
    assert {c for c, v in multi.items() if v == 1} == {"Effusion", "Pleural_Thickening", "Hernia"}
    assert all(v == 0 for v in recs["00000002_000.png"].labels.values())  # "No Finding"
    assert len(recs["00000002_000.png"].labels) == 14  # no blanks in ChestX-ray14
    assert recs["00000001_001.png"].meta["follow_up"] == "1"
    assert recs["00000003_001.png"].image_path.parent.parent.name == "images_002"
    assert ds.summary()["splits"] == {"train": 3, "test": 2}
    assert ds.summary()["patients"] == 3
    test = load_dataset("chestxray14", ds.root, split="test")
    assert sorted(r.image_path.name for r in test) == ["00000003_000.png", "00000003_001.png"]


def test_chestxray14_flat_images_folder(tmp_path):
    ds = load_dataset("chestxray14", fx.make_chestxray14(tmp_path, flat=True))
    assert len(ds) == 5 and all(r.image_path.parent.name == "images" for r in ds)


def test_chestxray14_prompts():
    from radz_train.data.datasets.chestxray14 import NIH_PROMPTS, ChestXray14

    assert NIH_PROMPTS["Pleural_Thickening"] == "pleural thickening"
    assert NIH_PROMPTS["Effusion"] == "pleural effusion"
    assert ChestXray14.name == "chestxray14"


def test_chestxray14_errors(tmp_path):
    root = fx.make_chestxray14(tmp_path)
    (root / "test_list.txt").unlink()
    with pytest.raises(DatasetLayoutError, match="test_list.txt"):
        load_dataset("chestxray14", root, split="train")
    with pytest.raises(ValueError, match="no records in split 'val'"):
        load_dataset("chestxray14", fx.make_chestxray14(tmp_path / "b"), split="val")
    root3 = fx.make_chestxray14(tmp_path / "c")
    csv_path = root3 / "Data_Entry_2017.csv"
    csv_path.write_text(csv_path.read_text().replace("Infiltration", "Infiltrate"))
    with pytest.raises(DatasetLayoutError, match="unknown finding 'Infiltrate'"):
        load_dataset("chestxray14", root3)
    drop_column(csv_path, "Finding Labels")
    with pytest.raises(DatasetLayoutError, match="no column 'Finding Labels'"):
        load_dataset("chestxray14", root3)
    csv_path.unlink()
    with pytest.raises(DatasetLayoutError, match="Data_Entry_2017.csv"):
        load_dataset("chestxray14", root3)


# ------------------------------------------------------------------------------ RSNA


def test_rsna_one_record_per_image_any_target(tmp_path):
    ds = load_dataset("rsna", fx.make_rsna_pneumonia(tmp_path))
    assert len(ds) == 3 and ds.classes == ("Pneumonia",) and ds.task == "binary"
    recs = {r.patient_id: r for r in ds}
    two_boxes = recs["00436515-870c-4b36-a041-de91049b9ab4"]
    assert two_boxes.labels == {"Pneumonia": 1} and len(two_boxes.meta["boxes"]) == 2
    assert two_boxes.meta["boxes"][1] == (562.0, 152.0, 256.0, 453.0)
    assert two_boxes.meta["detailed_class"] == "Lung Opacity"
    negative = recs["0004cfab-14fd-4e49-80ba-63a80b6bddd6"]
    assert negative.labels == {"Pneumonia": 0} and negative.meta["boxes"] == []
    assert negative.meta["detailed_class"] == "No Lung Opacity / Not Normal"
    assert negative.image_path.name == "0004cfab-14fd-4e49-80ba-63a80b6bddd6.dcm"
    assert ds.class_prompts["Pneumonia"] == "pneumonia"


def test_rsna_options_and_errors(tmp_path):
    root = fx.make_rsna_pneumonia(tmp_path)
    assert load_dataset("rsna_pneumonia", root, class_name="Lung Opacity").classes == ("Lung Opacity",)
    with pytest.raises(ValueError, match="no official split"):
        load_dataset("rsna_pneumonia", root, split="test")
    (root / "stage_2_detailed_class_info.csv").unlink()  # optional
    assert load_dataset("rsna_pneumonia", root)[0].meta["detailed_class"] is None
    drop_column(root / "stage_2_train_labels.csv", "Target")
    with pytest.raises(DatasetLayoutError, match="no column 'Target'"):
        load_dataset("rsna_pneumonia", root)
    root2 = fx.make_rsna_pneumonia(tmp_path / "b")
    for f in (root2 / "stage_2_train_images").iterdir():
        f.unlink()
    (root2 / "stage_2_train_images").rmdir()
    with pytest.raises(DatasetLayoutError, match="stage_2_train_images"):
        load_dataset("rsna_pneumonia", root2)
    assert len(load_dataset("rsna_pneumonia", root2, check_images=False)) == 3


# ------------------------------------------------------------------------------ SIIM-ACR


@pytest.mark.parametrize("header", ["ImageId, EncodedPixels", "ImageId,EncodedPixels"])
def test_siim_rle_rows_to_binary_labels(tmp_path, header):
    ds = load_dataset("siim_acr", fx.make_siim_acr(tmp_path, header=header))
    assert len(ds) == 3 and ds.classes == ("Pneumothorax",)
    labels = [r.labels["Pneumothorax"] for r in ds]
    assert labels == [0, 1, 1]  # " -1" is negative; several rows per image
    assert [len(r.meta["rle"]) for r in ds] == [0, 2, 1]
    assert ds[1].meta["rle"][1] == "1 5 1019 6"
    # found by walking: dicom-images-train/STUDY/SERIES/ImageId.dcm
    rel = ds[0].image_path.relative_to(ds.root / "dicom-images-train")
    assert len(rel.parts) == 3 and rel.parts[0] == ds[0].study_id
    assert ds.info["dicoms_without_labels"] == 1
    assert ds.class_prompts == {"Pneumothorax": "pneumothorax"}


def test_siim_errors(tmp_path):
    root = fx.make_siim_acr(tmp_path, header="ImageId, Pixels")
    with pytest.raises(DatasetLayoutError, match="train-rle.csv has no column 'EncodedPixels'"):
        load_dataset("siim_acr", root)
    root2 = fx.make_siim_acr(tmp_path / "b")
    victim = next((root2 / "dicom-images-train").rglob("*.1001.*.dcm"))
    victim.unlink()
    with pytest.raises(DatasetLayoutError, match=r"1 of 3 image files .*8323329\.1001\.1517875162"):
        load_dataset("siim_acr", root2)
    assert len(load_dataset("siim_acr", root2, skip_missing=True)) == 2
    (root2 / "train-rle.csv").unlink()
    with pytest.raises(DatasetLayoutError, match="train-rle.csv"):
        load_dataset("siim_acr", root2)


# ------------------------------------------------------------------------------ COVIDx


def test_covidx_binary_four_columns(tmp_path):
    ds = load_dataset("covidx", fx.make_covidx(tmp_path, "binary"))
    assert ds.info == {"columns": [4], "labels": "binary"}
    assert ds.classes == ("COVID-19",) and ds.task == "binary"
    assert [r.labels["COVID-19"] for r in ds] == [0, 0, 1, 1, 0]
    assert ds.summary()["splits"] == {"train": 3, "test": 2}
    first = ds[0]
    assert first.patient_id == "5" and first.meta["source"] == "cohen"
    assert first.image_path == ds.root / "train" / "ARDSSevere.png"
    test = load_dataset("covidx", ds.root, split="test")
    assert len(test) == 2 and all(r.split == "test" for r in test)


def test_covidx_three_class_three_columns(tmp_path):
    ds = load_dataset("covidx", fx.make_covidx(tmp_path, "three-class"))
    assert ds.info == {"columns": [3], "labels": "three-class"}
    assert ds.classes == ("normal", "pneumonia", "COVID-19") and ds.task == "multiclass"
    m, _ = ds.label_matrix()
    np.testing.assert_array_equal(m.sum(axis=1), np.ones(5))  # one-hot
    spaced = ds[1]
    assert spaced.meta["filename"] == "covid case 1.png" and spaced.labels["COVID-19"] == 1
    assert ds[0].meta["label"] == "pneumonia" and ds[0].meta["source"] is None
    assert ds.class_prompts["COVID-19"] == "COVID-19 pneumonia"


def test_covidx_errors(tmp_path):
    root = fx.make_covidx(tmp_path, "binary")
    (root / "test.txt").unlink()
    with pytest.raises(DatasetLayoutError, match="missing label file for split 'test'"):
        load_dataset("covidx", root)
    assert len(load_dataset("covidx", root, split="train")) == 3
    (root / "train.txt").write_text("p1 a.png maybe src\n")
    with pytest.raises(DatasetLayoutError, match="train.txt line 1: expected 'patient_id"):
        load_dataset("covidx", root, split="train")
    with pytest.raises(DatasetLayoutError, match="missing label file other.txt"):
        load_dataset("covidx", root, split="train", label_files={"train": "other.txt"})


# ------------------------------------------------------------------------------ PadChest


def test_padchest_vocabulary_and_labels(tmp_path):
    ds = load_dataset("padchest", fx.make_padchest(tmp_path))
    assert len(ds) == 6
    assert ds.classes == ("cardiomegaly", "normal", "pleural effusion")  # from the CSV
    labels = [r.labels for r in ds]
    assert labels[0] == {"cardiomegaly": 0, "normal": 1, "pleural effusion": 0}
    assert labels[1] == {"cardiomegaly": 1, "normal": 0, "pleural effusion": 1}  # ' cardiomegaly'
    assert labels[3] == {} and ds[3].meta["flags"] == ["exclude"]  # not a finding: blank
    assert labels[4] == {} and labels[5] == {}  # "['']" and a missing cell: blank
    assert ds[1].report == "derrame pleural derecho.\ncardiomegalia , sin otros hallazgos ."
    assert ds[1].image_path.parent.name == "0" and ds[2].image_path.parent.name == "1"
    assert ds[0].patient_id == "patient0" and ds[0].meta["projection"] == "PA"
    assert ds.class_prompts["pleural effusion"] == "pleural effusion"
    assert ds.class_prompts["normal"] == "no abnormalities"
    s = ds.summary()["classes"]["pleural effusion"]
    assert s == {"positive": 2, "negative": 1, "uncertain": 0, "blank": 3}


def test_padchest_min_count_and_frontal(tmp_path):
    root = fx.make_padchest(tmp_path)
    assert load_dataset("padchest", root, min_count=2).classes == ("pleural effusion",)
    frontal = load_dataset("padchest", root, frontal_only=True, min_count=2)
    assert len(frontal) == 5 and frontal.classes == ()  # the lateral held the 2nd effusion
    with pytest.raises(ValueError, match="no official split"):
        load_dataset("padchest", root, split="train")


def test_padchest_label_parsing_is_literal_only():
    assert parse_label_list("['a', ' B ', 'a', '']") == ["a", "b"]
    assert parse_label_list("") == [] and parse_label_list("nan") == []
    with pytest.raises(DatasetLayoutError, match="not a Python list of strings"):
        parse_label_list("__import__('os').system('true')")
    with pytest.raises(DatasetLayoutError, match="not a Python list of strings"):
        parse_label_list("[1, 2]")


def test_padchest_errors(tmp_path):
    root = fx.make_padchest(tmp_path)
    csv_path = root / fx.PADCHEST_CSV
    drop_column(csv_path, "ImageDir")
    with pytest.raises(DatasetLayoutError, match="no column 'ImageDir'"):
        load_dataset("padchest", root)
    csv_path.unlink()
    with pytest.raises(DatasetLayoutError, match="PADCHEST_chest_x_ray_images_labels_160K"):
        load_dataset("padchest", root)


# ------------------------------------------------------------------------------ all adapters

MAKERS = {
    "mimic_cxr": fx.make_mimic_cxr,
    "chexpert": fx.make_chexpert,
    "chestxray14": fx.make_chestxray14,
    "rsna_pneumonia": fx.make_rsna_pneumonia,
    "siim_acr": fx.make_siim_acr,
    "covidx": fx.make_covidx,
    "padchest": fx.make_padchest,
}


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_every_adapter_gives_prompts_and_a_label_matrix(tmp_path, name):
    ds = load_dataset(name, MAKERS[name](tmp_path))
    assert ds.name == name and len(ds) > 0
    assert set(ds.class_prompts) == set(ds.classes)
    for cls, phrase in ds.class_prompts.items():
        assert phrase and phrase == phrase.strip() and "_" not in phrase, (cls, phrase)
    for policy in UNCERTAIN_POLICIES:
        m, classes = ds.label_matrix(uncertain=policy)
        assert m.shape == (len(ds), len(classes))
        assert np.isin(m[~np.isnan(m)], [0.0, 1.0]).all()
    assert all(r.image_path.is_file() for r in ds)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_every_adapter_names_the_missing_folder_contents(tmp_path, name):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetLayoutError, match=f"^{name}: missing .*expected"):
        load_dataset(name, empty)
