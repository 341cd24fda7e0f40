"""End-to-end training on CPU: the loss falls, checkpoints save and resume exactly, eval runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from radz_train.data.phantom import FINDINGS  # noqa: E402
from radz_train.training.checkpoint import load_model  # noqa: E402
from radz_train.training.config import TrainConfig  # noqa: E402
from radz_train.training.data import load_image_report_set  # noqa: E402
from radz_train.training.trainer import Trainer  # noqa: E402
from radz_train.zero_shot import evaluate  # noqa: E402

# A shrunken tiny preset: the tests check the machinery, not accuracy.
SMALL = {
    "vision.image_size": 32,
    "vision.patch_size": 8,
    "vision.num_hidden_layers": 1,
    "vision.hidden_size": 64,
    "vision.num_attention_heads": 2,
    "vision.intermediate_size": 128,
    "decoder.num_hidden_layers": 2,
    "decoder.hidden_size": 64,
    "decoder.num_attention_heads": 2,
    "decoder.num_key_value_heads": 2,
    "decoder.intermediate_size": 128,
    "max_text_length": 64,
    "tokenizer.vocab_size": 500,
}


def config(csv_path: Path, out: Path, **kw) -> TrainConfig:
    base = dict(
        train_csv=str(csv_path),
        out_dir=str(out),
        model="tiny",
        model_overrides=dict(SMALL),
        batch_size=16,
        learning_rates={"vision": 2e-3, "projector": 2e-3, "decoder": 2e-3, "tokens": 2e-3},
        warmup_ratio=0.0,
        log_every=1,
        threads=2,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_loss_falls_when_overfitting_a_small_set(phantom_csv_64, tmp_path):
    # fixed images (augmentation off): memorising 16 pairs is the point here
    trainer = Trainer(config(phantom_csv_64, tmp_path / "run", limit=16, max_steps=25, augment=False))
    assert not trainer.augment and trainer.data.stored is None
    losses = [trainer.train_step()["loss"] for _ in range(25)]
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3]), losses


def test_checkpoint_resume_is_exact_and_eval_runs(phantom_csv_64, tmp_path):
    # augmentation on (the default for phantoms): the resumed run re-draws the same variants
    straight = Trainer(config(phantom_csv_64, tmp_path / "a", max_steps=6, save_every=3))
    assert straight.augment and straight.data.images is None
    final_a = straight.fit(progress=False)
    assert (tmp_path / "a" / "checkpoint-3" / "model.safetensors").exists()
    assert (tmp_path / "a" / "final").resolve() == final_a.resolve()
    log = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]
    assert all(np.isfinite(r["loss"]) and r["samples_per_s"] > 0 for r in log)

    resumed = Trainer(config(phantom_csv_64, tmp_path / "b", max_steps=6), resume=tmp_path / "a" / "checkpoint-3")
    assert resumed.step == 3
    final_b = resumed.fit(progress=False)
    a, b = load_model(final_a).state_dict(), load_model(final_b).state_dict()
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)

    model = load_model(final_a)
    data = load_image_report_set(phantom_csv_64, list(FINDINGS), model.config.image_size, "csv", limit=32)
    results = evaluate(model, data, list(FINDINGS), out_dir=tmp_path / "eval")
    assert set(results["modes"]) == {"softmax", "posneg", "anchor"}
    for mode in results["modes"].values():
        assert 0.0 <= mode["macro"]["auc"] <= 1.0
    assert (tmp_path / "eval" / "roc_softmax.png").stat().st_size > 1000
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["n_images"] == 32


def test_fine_tuning_starts_from_a_checkpoint_with_a_fresh_schedule(phantom_csv_64, tmp_path, monkeypatch):
    base = Trainer(config(phantom_csv_64, tmp_path / "base", max_steps=3, limit=32, augment=False)).fit(progress=False)
    tuned = Trainer(
        config(phantom_csv_64, tmp_path / "tuned", max_steps=2, limit=32, model_overrides={}, init_from=str(base))
    )
    assert tuned.step == 0 and tuned.scheduler.last_epoch == 0
    start, trained = tuned.model.state_dict(), load_model(base).state_dict()
    assert start.keys() == trained.keys()
    for key in start:
        torch.testing.assert_close(start[key], trained[key], rtol=0, atol=0, msg=key)
    final = tuned.fit(progress=False)
    saved, base_config = (json.loads((p / "train_config.json").read_text()) for p in (final, base))
    assert saved["init_from"] == str(base)
    for key in ("checkpoint", "vision_checkpoint", "language_checkpoint"):  # where frozen parts come from
        assert key in saved and saved[key] == base_config[key]
    moved = load_model(final).state_dict()
    assert any(not torch.equal(moved[k], trained[k]) for k in trained)
    with pytest.raises(ValueError, match="init_from: the model comes from that checkpoint"):
        config(phantom_csv_64, tmp_path / "x", init_from=str(base))  # SMALL model_overrides given too
    with pytest.raises(ValueError, match="drop model_overrides, checkpoint, vision_checkpoint"):
        config(phantom_csv_64, tmp_path / "x", model_overrides={}, init_from=str(base), vision_checkpoint="/v")
    (tmp_path / "ft.json").write_text(json.dumps({"train_csv": "x.csv", "out_dir": "o", "init_from": "runs/final"}))
    assert TrainConfig.load(tmp_path / "ft.json").init_from == str((tmp_path / "runs" / "final").resolve())
    # a path given on the command line is relative to the working directory, not to the file
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    loaded = TrainConfig.load(tmp_path / "ft.json", [("init_from", "base/final"), ("out_dir", "tuned")])
    assert (loaded.init_from, loaded.out_dir) == (str(work / "base" / "final"), str(work / "tuned"))
    with pytest.raises(FileNotFoundError, match="missing model.safetensors"):
        Trainer(config(phantom_csv_64, tmp_path / "y", model_overrides={}, init_from=str(tmp_path)))


def test_training_steps_with_augmentation_on_and_off(phantom_csv_64, tmp_path):
    """Augmentation on: every step preprocesses fresh variants (same step + sample -> same variant),
    labels untouched; off: the set preprocessed once at load. Both train."""
    on = Trainer(config(phantom_csv_64, tmp_path / "on", max_steps=2, limit=32, augment=True))
    off = Trainer(config(phantom_csv_64, tmp_path / "off", max_steps=2, limit=32, augment=False))
    assert on.augment and on.data.images is None and len(on.data.stored) == 32
    assert not off.augment and off.data.stored is None and off.data.images.shape == (32, 32, 32)
    np.testing.assert_array_equal(on.data.labels, off.data.labels)
    indices = on.batch_indices(0)
    first, again = on.batch_grey(indices), on.batch_grey(indices)
    assert first.shape == off.data.images[indices].shape and first.dtype == np.float16
    np.testing.assert_array_equal(first, again)
    assert np.abs(on.batch_grey(indices, step=1).astype(np.float32) - first.astype(np.float32)).mean() > 1e-3
    # prefetching (the default) hands over exactly the batch the loop would have made itself
    np.testing.assert_array_equal(on.step_grey(indices), first)
    assert set(on._ahead) == {1}
    on.step = 1
    np.testing.assert_array_equal(on.step_grey(on.batch_indices(1)), on.batch_grey(on.batch_indices(1), step=1))
    on.step = 0
    for trainer in (on, off):
        metrics = [trainer.train_step() for _ in range(2)]
        assert all(np.isfinite(m["loss"]) for m in metrics)
        trainer.close()
    assert metrics[-1]["augment_s"] == 0.0 and on.augment_seconds > 0.0 and on._pool is None


def test_augmentation_defaults_to_on_for_phantom_sites_only(phantom_csv_64, tmp_path):
    from radz_train.training.trainer import resolve_augment

    assert resolve_augment(config(phantom_csv_64, tmp_path), None) is True
    other = tmp_path / "other.csv"
    other.write_text(phantom_csv_64.read_text().replace(",site_a,", ",hospital_x,"))
    assert resolve_augment(config(other, tmp_path), None) is False
    assert resolve_augment(config(other, tmp_path, augment=True), None) is True
    assert resolve_augment(config(phantom_csv_64, tmp_path, augment=False), None) is False
    with pytest.raises(ValueError, match="augment_probabilities: augmentation 'nosie'"):
        config(phantom_csv_64, tmp_path, augment_probabilities={"nosie": 0.5})
    with pytest.raises(ValueError, match="augment: must be"):
        config(phantom_csv_64, tmp_path, augment="yes")
    (tmp_path / "c.json").write_text(json.dumps({"train_csv": "x.csv", "out_dir": "o"}))
    loaded = TrainConfig.load(tmp_path / "c.json", [("augment_probabilities.noise", 0), ("augment", False)])
    assert loaded.augment_probabilities == {"noise": 0} and loaded.augment is False


def test_bad_training_config_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="grad_accum"):
        TrainConfig(train_csv="x.csv", out_dir=str(tmp_path), batch_size=10, grad_accum=3)
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(train_csv="x.csv", out_dir=str(tmp_path), precision="int8")
    (tmp_path / "c.json").write_text(json.dumps({"train_csv": "x.csv", "out_dir": "o", "learning_rate": 1}))
    with pytest.raises(ValueError, match="unknown keys"):
        TrainConfig.load(tmp_path / "c.json")
    with pytest.raises(FileNotFoundError, match="no such CSV"):
        Trainer(config(tmp_path / "missing.csv", tmp_path / "run"))


def test_radz_train_and_eval_commands(phantom_csv_64, tmp_path):
    from radz_engine.cli import main

    cfg = config(phantom_csv_64, tmp_path / "run", max_steps=2).to_dict()
    (tmp_path / "train.json").write_text(json.dumps(cfg))
    assert main(["train", str(tmp_path / "train.json"), "batch_size=8", "--no-progress"]) == 0
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(tmp_path / "run" / "final"),
                "--csv",
                str(phantom_csv_64),
                "--out",
                str(tmp_path / "eval"),
                "--modes",
                "softmax",
                "--limit",
                "24",
            ]
        )
        == 0
    )
    assert main(["train", str(tmp_path / "train.json"), "nonsense=1"]) == 2


@pytest.mark.slow
def test_ddp_under_torchrun_on_cpu(phantom_csv_64, tmp_path):
    """Two gloo processes: features are gathered across ranks and one checkpoint is written."""
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = config(phantom_csv_64, tmp_path / "ddp", max_steps=3, batch_size=16, threads=1).to_dict()
    (tmp_path / "ddp.json").write_text(json.dumps(cfg))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(port),
        "-m",
        "radz_engine.cli",
        "train",
        str(tmp_path / "ddp.json"),
        "--no-progress",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "ddp" / "checkpoint-3" / "model.safetensors").exists()
    steps = [json.loads(line)["step"] for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]  # only rank 0 logs
    load_model(tmp_path / "ddp" / "final")


def test_command_line_overrides_reach_nested_settings(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"train_csv": "x.csv", "out_dir": "o"}))
    config = TrainConfig.load(
        tmp_path / "c.json",
        [
            ("model_overrides.n_image_tokens", 0),
            ("model_overrides.decoder.num_hidden_layers", 2),
            ("learning_rates.projector", 1e-3),
            ("lam", 1.0),
        ],
    )
    assert config.model_overrides == {"n_image_tokens": 0, "decoder.num_hidden_layers": 2}
    assert config.learning_rates["projector"] == 1e-3 and config.learning_rates["decoder"] == 2e-5
    assert config.lam == 1.0
    with pytest.raises(ValueError, match="unknown setting"):
        TrainConfig.load(tmp_path / "c.json", [("modle_overrides.x", 1)])


def test_a_fine_tune_of_a_model_built_on_pretrained_parts_reloads_with_them(phantom_csv_64, tmp_path):
    """The base's pretrained sources travel into the fine-tune's config, so `load_model` rebuilds
    the fine-tune on them (frozen weights are not in model.safetensors)."""
    from transformers import CLIPVisionModel, LlamaForCausalLM

    from test_model import _tiny_hf_parts  # tiny CLIP + Llama folders, built in place

    tok, vision, text = _tiny_hf_parts(tmp_path)
    CLIPVisionModel(vision).save_pretrained(tmp_path / "vision")
    LlamaForCausalLM(text).save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    sources = {"vision_checkpoint": str(tmp_path / "vision"), "language_checkpoint": str(tmp_path / "lm")}
    common = dict(max_steps=1, limit=16, augment=False, batch_size=8, model_overrides={})
    base = Trainer(config(phantom_csv_64, tmp_path / "base", **common, **sources)).fit(progress=False)
    tuned = Trainer(config(phantom_csv_64, tmp_path / "tuned", **common, init_from=str(base)))
    final = tuned.fit(progress=False)
    saved = json.loads((final / "train_config.json").read_text())
    assert {k: saved[k] for k in sources} == sources and saved["init_from"] == str(base)
    reloaded, trained = load_model(final).state_dict(), tuned.model.state_dict()
    for key in trained:
        torch.testing.assert_close(reloaded[key], trained[key], rtol=0, atol=0, msg=key)
