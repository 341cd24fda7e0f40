"""Preset registry: every JSON file in presets/ is a model (open_clip style)."""

from __future__ import annotations

import json
from pathlib import Path

from radz_train.model.config import ModelConfig

PRESET_DIR = Path(__file__).with_name("presets")


def list_models() -> list[str]:
    """Names of the shipped presets."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def get_model_config(name_or_path: str, overrides: dict | None = None) -> ModelConfig:
    """A preset by name, or a JSON config file by path, with optional dotted overrides."""
    path = Path(name_or_path)
    if path.suffix == ".json" and path.exists():
        data = json.loads(path.read_text())
    elif (PRESET_DIR / f"{name_or_path}.json").exists():
        data = json.loads((PRESET_DIR / f"{name_or_path}.json").read_text())
    else:
        raise ValueError(f"model {name_or_path!r}: not a preset ({', '.join(list_models())}) or a JSON file")
    config = ModelConfig.from_dict(data)
    return config.with_overrides(overrides) if overrides else config
