"""Model cards (issue 18 items 1 and 4): every bundle carries one, the loader checks it and names
the field at fault, a format-1 bundle loads with a warning as research use, `radz export`
refuses to write a bundle without intended use, `radz bundle info` prints the card."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("onnxruntime")

from radz_engine.bundle.card import (  # noqa: E402
    INTENDED_USES,
    PRIVATE_CODES_LIMITATION,
    BundleFormatWarning,
    CardError,
    notice,
    validate_card,
)
from radz_engine.bundle.default import default_bundle_path  # noqa: E402
from radz_engine.bundle.loader import BundleError, content_hash, load_bundle  # noqa: E402


def _copy(tiny_bundle, tmp_path, name="copy"):
    return shutil.copytree(tiny_bundle[0], tmp_path / name)


def _edit_manifest(folder, change):
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_written_bundle_has_a_valid_card_with_its_evaluation(tiny_bundle):
    out, report = tiny_bundle
    bundle = load_bundle(out, check_onnx=False)
    card = bundle.card()
    assert validate_card(bundle.manifest["card"]) is bundle.manifest["card"]
    assert card["hash"] == bundle.content_hash == content_hash(bundle.manifest) == bundle.identity()["hash"]
    assert card["name"] == bundle.name == out.resolve().name and card["version"] == bundle.version
    # write_bundle without a card (the Python API): research, the safest use; never a clinical one.
    assert card["intended_use"] == bundle.intended_use == "research"
    auc = bundle.manifest["parity"]["zero_shot_auc"]
    assert card["evaluation"]["metrics"]["zero_shot_auc"] == {m: r["bundle"] for m, r in auc["modes"].items()}
    assert card["evaluation"]["command"] == bundle.manifest["command"]
    assert PRIVATE_CODES_LIMITATION in card["limitations"]
    assert notice(card) == "For research use only; not for diagnostic use"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda m: m.pop("card"), r"card: missing"),
        (lambda m: m["card"].update(intended_use="diagnosis"), r"card\.intended_use: 'diagnosis' is not one of"),
        (lambda m: m["card"].pop("intended_use"), r"card\.intended_use: missing"),
        (lambda m: m["card"].pop("training_data"), r"card\.training_data: missing"),
        (lambda m: m["card"].update(licence=""), r"card\.licence: missing or empty"),
        (lambda m: m["card"]["evaluation"].pop("command"), r"card\.evaluation\.command: missing"),
        (lambda m: m["card"].update(intended_use="clinical"), r"card\.regulatory: intended use 'clinical' needs"),
    ],
)
def test_bad_card_is_a_clear_error_naming_the_field(tiny_bundle, tmp_path, change, field):
    folder = _copy(tiny_bundle, tmp_path)
    _edit_manifest(folder, change)
    with pytest.raises(BundleError, match=r"manifest\.json: " + field) as info:
        load_bundle(folder, check_onnx=False)
    assert info.value.file == "manifest.json"


def test_format_1_bundle_loads_with_a_warning_as_research(tiny_bundle, tmp_path):
    folder = _copy(tiny_bundle, tmp_path)
    _edit_manifest(folder, lambda m: (m.pop("card"), m.update(format_version=1)))
    with pytest.warns(
        BundleFormatWarning, match="format_version 1 has no model card; treated as intended use 'research'"
    ):
        bundle = load_bundle(folder, check_onnx=False)
    card = bundle.card()
    assert bundle.intended_use == card["intended_use"] == "research" and card["legacy"] is True
    assert card["hash"] == bundle.content_hash and card["name"] == bundle.name
    assert notice(card) == "For research use only; not for diagnostic use"


def test_notice_per_intended_use():
    assert set(INTENDED_USES) == {"research", "clinical-evaluation", "clinical"}
    synthetic = {"training_data": {"synthetic": True}}
    assert notice({"intended_use": "research", **synthetic}) == (
        "For research use only; not for diagnostic use; model trained on synthetic data"
    )
    assert notice({"intended_use": "clinical-evaluation"}) == "For clinical evaluation only; not for diagnostic use"
    assert notice({"intended_use": "clinical", "regulatory": "510(k) K000000"}) is None


def test_shipped_bundle_card(capsys):
    from radz_engine.cli.bundle import main

    bundle = load_bundle(default_bundle_path(), check_onnx=False)
    card = bundle.card()
    assert bundle.manifest["format_version"] == 2 and card["intended_use"] == "research"
    assert card["training_data"]["synthetic"] is True and "synthetic phantoms" in card["training_data"]["description"]
    assert card["evaluation"]["metrics"]["macro_auc"] == bundle.manifest["provenance"]["check"]["macro_auc"]
    assert any("never seen a real radiograph" in text for text in card["limitations"])
    assert (card["name"], card["version"]) == (bundle.name, bundle.version) == ("default", "0.1.0")
    assert main(["info", "--no-verify"]) == 0
    text = capsys.readouterr().out
    assert f"model card: default 0.1.0 (hash {bundle.content_hash})" in text
    assert "intended use: research" in text and "model trained on synthetic data" in text
    assert "never seen a real radiograph" in text and "licence: Apache-2.0" in text
    assert main(["info", "--json", "--no-verify"]) == 0
    assert json.loads(capsys.readouterr().out) == card


def test_bundle_info_of_a_bad_bundle_names_the_field(tiny_bundle, tmp_path, capsys):
    from radz_engine.cli import main

    folder = _copy(tiny_bundle, tmp_path)
    _edit_manifest(folder, lambda m: m["card"].update(intended_use="screening"))
    assert main(["bundle", "info", str(folder), "--no-verify"]) == 2
    assert "card.intended_use: 'screening' is not one of research, clinical-evaluation, clinical" in (
        capsys.readouterr().err
    )
    legacy = _copy(tiny_bundle, tmp_path, "legacy")
    _edit_manifest(legacy, lambda m: (m.pop("card"), m.update(format_version=1)))
    assert main(["bundle", "info", str(legacy), "--no-verify"]) == 0
    captured = capsys.readouterr()
    assert "warning: bundle" in captured.err and "intended use: research" in captured.out


def test_radz_export_refuses_without_intended_use(tmp_path, capsys):
    from radz_export.cli import main

    out = tmp_path / "bundle"
    assert main([str(tmp_path), "--out", str(out)]) == 2
    assert "no intended use: give --intended-use (research | clinical-evaluation | clinical)" in capsys.readouterr().err
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"name": "chest", "licence": "CC-BY-4.0"}))
    assert main([str(tmp_path), "--out", str(out), "--card", str(card)]) == 2
    assert "no intended use" in capsys.readouterr().err
    assert main([str(tmp_path), "--out", str(out), "--intended-use", "clinical"]) == 2
    assert "model card: card.regulatory: intended use 'clinical' needs" in capsys.readouterr().err
    card.write_text("[1, 2]")
    assert main([str(tmp_path), "--out", str(out), "--card", str(card), "--intended-use", "research"]) == 2
    assert f"--card {card}: must be a JSON object" in capsys.readouterr().err
    assert not out.exists()  # nothing written


def test_card_from_file_and_flags_reaches_the_manifest(tiny_export_model, tmp_path):
    from radz_export.bundle import build_card, write_bundle
    from radz_export.cli import build_parser, card_from_args

    card_file = tmp_path / "card.json"
    card_file.write_text(
        json.dumps(
            {
                "name": "chest-zs",
                "training_data": {"description": "phantoms, 64 images, site_a", "datasets": [{"count": 64}]},
                "limitations": ["tiny"],
                "licence": "CC-BY-4.0",
            }
        )
    )
    args = build_parser().parse_args(
        ["ckpt", "--out", "x", "--card", str(card_file), "--intended-use", "clinical-evaluation"]
        + ["--card-version", "2.1", "--synthetic-data", "--limitation", "no lateral views"]
    )
    card = card_from_args(args)
    assert card["intended_use"] == "clinical-evaluation" and card["version"] == "2.1"
    assert card["training_data"]["synthetic"] is True and card["limitations"] == ["tiny", "no lateral views"]
    with pytest.raises(CardError, match=r"card\.intended_use: missing"):
        build_card({}, name="a", version="1", train={}, command="", require_intended_use=True)
    out = tmp_path / "bundle"
    write_bundle(tiny_export_model, out, parity_checks=False, auc_phantoms=0, card=card, require_intended_use=True)
    bundle = load_bundle(out, check_onnx=False)
    written = bundle.card()
    assert (written["name"], written["version"], written["intended_use"]) == ("chest-zs", "2.1", "clinical-evaluation")
    assert bundle.identity() == {"name": "chest-zs", "version": "2.1", "hash": bundle.content_hash}
    assert written["limitations"] == ["tiny", "no lateral views", PRIVATE_CODES_LIMITATION]
    assert written["evaluation"] == {"summary": "not evaluated", "metrics": {}, "command": ""}
    assert notice(written) == "For clinical evaluation only; not for diagnostic use; model trained on synthetic data"
