"""Model configuration: one JSON preset per model (open_clip style), plain dataclasses here."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from typing import Any

VISION_TYPES = ("clip", "siglip")
DECODER_TYPES = ("llama", "mistral", "qwen2")
TRAIN_DECODER = ("full", "lora", "frozen")


@dataclass
class Prompts:
    """The paper's prompts (DESIGN.md section 1); all configurable."""

    image: str = "What disease is indicated by the chest X-ray?"
    text_question: str = "What disease is described in this text?"
    class_template: str = "This is a chest X-ray showing {}"
    positive_template: str = "{}"
    negative_template: str = "no {}"


@dataclass
class ModelConfig:
    name: str
    vision: dict
    decoder: dict
    tokenizer: dict = field(default_factory=lambda: {"type": "bpe", "vocab_size": 2000})
    n_image_tokens: int = 4
    n_text_tokens: int = 8
    feature_layer: int = -2
    max_text_length: int = 128
    train_vision: bool = False
    train_decoder: str = "lora"
    lora: dict | None = None
    tau: float = 0.05
    input: dict = field(default_factory=lambda: {"mean": [0.5] * 3, "std": [0.5] * 3})
    prompts: Prompts = field(default_factory=Prompts)
    description: str = ""
    projector: str = "mlp2x_gelu"

    def __post_init__(self) -> None:
        if isinstance(self.prompts, dict):
            self.prompts = Prompts(**self.prompts)
        if self.vision.get("type") not in VISION_TYPES:
            raise ValueError(f"vision.type: must be one of {VISION_TYPES}, got {self.vision.get('type')!r}")
        if self.decoder.get("type") not in DECODER_TYPES:
            raise ValueError(f"decoder.type: must be one of {DECODER_TYPES}, got {self.decoder.get('type')!r}")
        if self.train_decoder not in TRAIN_DECODER:
            raise ValueError(f"train_decoder: must be one of {TRAIN_DECODER}, got {self.train_decoder!r}")
        if self.train_decoder == "lora" and not self.lora:
            raise ValueError("lora: train_decoder='lora' needs a lora section (r, alpha, target_modules)")
        if self.n_image_tokens < 0 or self.n_text_tokens < 0:
            raise ValueError("n_image_tokens / n_text_tokens: must be >= 0 (0 = last-token features)")
        layers = int(self.decoder["num_hidden_layers"])
        if not (-layers - 1 <= self.feature_layer <= layers) or self.feature_layer == 0:
            raise ValueError(
                f"feature_layer: must index a decoder layer (1..{layers} or -1..-{layers}), got {self.feature_layer}"
            )
        if self.projector != "mlp2x_gelu":
            raise ValueError(f"projector: only 'mlp2x_gelu' is supported, got {self.projector!r}")
        if not self.tau > 0:
            raise ValueError(f"tau: must be > 0, got {self.tau}")

    @property
    def image_size(self) -> int:
        return int(self.vision["image_size"])

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"model config: unknown keys {sorted(unknown)}")
        return cls(**copy.deepcopy(data))

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def with_overrides(self, overrides: dict[str, Any]) -> ModelConfig:
        """A copy with dotted keys replaced, e.g. {"decoder.num_hidden_layers": 2}."""
        data = self.to_dict()
        for dotted, value in overrides.items():
            apply_override(data, dotted, value)
        return ModelConfig.from_dict(data)


def apply_override(data: dict, dotted: str, value: Any) -> None:
    """Set data[a][b] = value for "a.b"; the parent keys must exist (typos are errors)."""
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        if not isinstance(node, dict) or key not in node or not isinstance(node[key], dict):
            raise ValueError(f"override {dotted!r}: no section {key!r}")
        node = node[key]
    if not isinstance(node, dict) or (keys[-1] not in node and node is data):
        raise ValueError(f"override {dotted!r}: unknown key {keys[-1]!r}")
    node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """ "a.b=3" -> ("a.b", 3); values are parsed as JSON when they can be, else kept as text."""
    if "=" not in text:
        raise ValueError(f"override {text!r}: expected KEY=VALUE")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value
