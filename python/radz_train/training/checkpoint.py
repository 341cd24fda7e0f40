"""Checkpoints: weights in safetensors, optimizer/scheduler/RNG for exact resume, configs, tokenizer.

Layout of a checkpoint folder:
    model.safetensors     trainable weights (all weights when the whole model trains)
    model_config.json     the ModelConfig (the architecture)
    train_config.json     the TrainConfig that produced it
    trainer_state.pt      step, optimizer, scheduler, RNG states (for exact resume)
    tokenizer/            the tokenizer, modality tokens included
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from radz_train.model import ModelConfig, RadzModel, create_model


def saved_state_dict(model: RadzModel) -> dict[str, torch.Tensor]:
    """Trainable parameters only when parts are frozen (LoRA runs stay small), else everything."""
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    everything = len(trainable) == sum(1 for _ in model.named_parameters())
    state = model.state_dict()
    keep = state if everything else {k: v for k, v in state.items() if k in trainable}
    return {k: v.detach().contiguous().cpu() for k, v in keep.items()}


def save_checkpoint(
    path: Path, model: RadzModel, train_config: dict, step: int, optimizer=None, scheduler=None
) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    save_file(saved_state_dict(model), str(tmp / "model.safetensors"))
    (tmp / "model_config.json").write_text(model.config.to_json())
    (tmp / "train_config.json").write_text(json.dumps(train_config, indent=2))
    model.tokenizer.save_pretrained(str(tmp / "tokenizer"))
    state = {
        "step": step,
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state(),
        "python_rng": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    torch.save(state, tmp / "trainer_state.pt")
    if path.exists():  # replace atomically-ish: a crash never leaves a half-written checkpoint
        import shutil

        shutil.rmtree(path)
    tmp.rename(path)
    return path


def load_model(path: str | Path, device: str = "cpu") -> RadzModel:
    """A trained RadzModel from a checkpoint folder (base weights from the recorded checkpoints)."""
    from radz_train.model.tokenizer import load_tokenizer

    path = Path(path)
    for name in ("model.safetensors", "model_config.json", "train_config.json", "tokenizer"):
        if not (path / name).exists():
            raise FileNotFoundError(f"checkpoint {path}: missing {name}")
    config = ModelConfig.from_dict(json.loads((path / "model_config.json").read_text()))
    train = json.loads((path / "train_config.json").read_text())
    tokenizer = load_tokenizer(path / "tokenizer")
    model = create_model(
        config,
        tokenizer=tokenizer,
        checkpoint=train.get("checkpoint"),
        vision_checkpoint=train.get("vision_checkpoint"),
        language_checkpoint=train.get("language_checkpoint"),
    )
    state = load_file(str(path / "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise ValueError(f"checkpoint {path}: weights that the model does not have: {unexpected[:5]}")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    lost = [k for k in missing if k in trainable]
    if lost:
        raise ValueError(f"checkpoint {path}: trainable weights missing: {lost[:5]}")
    return model.to(device).eval()


def load_trainer_state(path: Path) -> dict:
    return torch.load(Path(path) / "trainer_state.pt", weights_only=False)


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch_rng"])
    np.random.set_state(state["numpy_rng"])
    random.setstate(state["python_rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
