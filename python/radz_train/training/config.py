"""Training configuration: a JSON file plus KEY=VALUE overrides on the command line."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from radz_train.model.config import apply_override

DEFAULT_CLASSES = (
    "cardiomegaly",
    "pleural_effusion",
    "pneumothorax",
    "consolidation",
    "nodule",
    "mass",
    "atelectasis",
    "edema",
    "emphysema",
    "no_finding",
)


@dataclass
class TrainConfig:
    train_csv: str
    out_dir: str
    model: str = "tiny"
    model_overrides: dict = field(default_factory=dict)
    checkpoint: str | None = None  # llava-hf folder
    vision_checkpoint: str | None = None  # CLIP / SigLIP folder
    language_checkpoint: str | None = None  # causal LM folder
    # Fine-tuning: start from this radz checkpoint folder's weights, architecture and tokenizer
    # (a fresh optimizer and schedule; `model` and `model_overrides` are the checkpoint's).
    init_from: str | None = None
    classes: list = field(default_factory=lambda: list(DEFAULT_CLASSES))  # DKAM anchor classes
    knowledge: str | None = None  # knowledge JSON; default: the shipped one
    limit: int | None = None  # use only the first N rows of train_csv
    epochs: float = 1.0
    max_steps: int | None = None  # overrides epochs when set
    batch_size: int = 64
    grad_accum: int = 1
    learning_rates: dict = field(
        default_factory=lambda: {"vision": 2e-5, "projector": 2e-6, "decoder": 2e-5, "tokens": 2e-5}
    )
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    max_grad_norm: float = 1.0
    lam: float = 0.5  # L_total = lam * L_CA + (1 - lam) * L_CG
    crossed: bool = True
    dkam_mode: str = "multi_positive"
    same_report_positives: bool = True  # identical reports are not negatives
    precision: str = "fp32"  # fp32 | bf16 | fp16 (the latter two on GPU)
    gradient_checkpointing: bool = False
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    log_every: int = 10
    save_every: int | None = None  # steps; a final checkpoint is always written
    # Acquisition-shift augmentation (radz_train/data/augment.py, docs/AUGMENTATION.md): True, False,
    # or None = on when every training row comes from a phantom site (site_a, site_b, ...).
    augment: bool | None = None
    augment_probabilities: dict = field(default_factory=dict)  # per-shift probability overrides
    augment_prefetch: bool = True  # make the next step's augmented batch in a background thread

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision: must be fp32, bf16 or fp16, got {self.precision!r}")
        if self.batch_size < 2:
            raise ValueError("batch_size: contrastive training needs >= 2")
        if self.grad_accum < 1 or self.batch_size % self.grad_accum:
            raise ValueError(f"grad_accum: must divide batch_size ({self.batch_size}), got {self.grad_accum}")
        if not 0.0 <= self.lam <= 1.0:
            raise ValueError(f"lam: must be in [0, 1], got {self.lam}")
        sources = (self.model_overrides, self.checkpoint, self.vision_checkpoint, self.language_checkpoint)
        if self.init_from and any(sources):
            raise ValueError(
                "init_from: the model comes from that checkpoint; drop model_overrides, checkpoint, "
                "vision_checkpoint and language_checkpoint"
            )
        if self.augment is not None and not isinstance(self.augment, bool):
            raise ValueError(f"augment: must be true, false or null (auto), got {self.augment!r}")
        from radz_train.data.augment import check_probabilities

        try:
            check_probabilities(self.augment_probabilities)
        except ValueError as error:
            raise ValueError(f"augment_probabilities: {error}") from None

    @classmethod
    def load(cls, path: str | Path, overrides: list[tuple[str, object]] = ()) -> TrainConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"training config {path}: not found") from None
        except json.JSONDecodeError as error:
            raise ValueError(f"training config {path}: not valid JSON ({error})") from None
        paths = ("train_csv", "out_dir", "init_from")
        for key in paths:  # relative paths in the file are relative to the file
            if data.get(key) and not Path(data[key]).is_absolute():
                data[key] = str((path.parent / data[key]).resolve())
        for key, value in overrides:
            head, _, rest = key.partition(".")
            if head not in cls.__dataclass_fields__:
                raise ValueError(f"override {key!r}: unknown setting (see radz_train/training/config.py)")
            if head == "model_overrides" and rest:  # its keys are dotted model-config paths themselves
                data.setdefault("model_overrides", {})[rest] = value
            elif head == "augment_probabilities" and rest:
                data["augment_probabilities"] = {**(data.get("augment_probabilities") or {}), rest: value}
            elif head == "learning_rates" and rest:
                rates = dict(data.get("learning_rates") or cls.__dataclass_fields__["learning_rates"].default_factory())
                rates[rest] = value
                data["learning_rates"] = rates
            elif rest:
                apply_override(data, key, value)
            else:
                data[key] = value
            if head in paths and not rest and value:  # on the command line: relative to the working directory
                data[key] = str(Path(str(value)).resolve())
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"training config {path}: unknown keys {sorted(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)
