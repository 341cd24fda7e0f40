"""The model card every bundle carries (manifest["card"], format version 2; docs/MODEL_CARD.md).

What a result that leaves the machine must say about the model that made it: its identity,
what it was trained on, how it was evaluated (the numbers and the command that produced them),
what it is intended for, what it cannot do, and its licence. The intended use is one word of a
fixed vocabulary (INTENDED_USES); `radz serve` and `radz screen` mark every result of a model
that is not cleared for clinical use with `notice(card)`.

The card in the manifest holds no content hash (the hash is computed over the manifest, card
included); `Bundle.card()` adds it. Torch- and numpy-free.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "INTENDED_USES",
    "REQUIRED_FIELDS",
    "PRIVATE_CODES_LIMITATION",
    "BundleFormatWarning",
    "CardError",
    "validate_card",
    "legacy_card",
    "notice",
    "format_card",
]

# The fixed vocabulary of intended uses, from the most to the least restricted.
INTENDED_USES = {
    "research": "research use only: results are not for diagnostic use and are marked as such everywhere "
    "they leave the machine (`radz serve` needs --research-use)",
    "clinical-evaluation": "evaluation in a clinical setting under a study protocol (shadow mode, reader "
    "studies): results are not for diagnostic use and are marked as such",
    "clinical": "clinical use under the regulatory clearance named in the card's 'regulatory' field",
}

REQUIRED_FIELDS = ("name", "version", "intended_use", "training_data", "evaluation", "limitations", "licence")

PRIVATE_CODES_LIMITATION = (
    "Findings are coded in the private '99RADZ' coding scheme (code values are the class names); no mapping to "
    "SNOMED CT / RadLex exists yet, so downstream systems cannot interpret them as clinical concepts."
)


class BundleFormatWarning(UserWarning):
    """A bundle of an older format was loaded (it works, with the defaults the warning names)."""


class CardError(ValueError):
    """A model card field is missing or invalid. `field` is its dotted name ("card.intended_use")."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _text(card: dict, key: str) -> str:
    value = card.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CardError(f"card.{key}", f"missing or empty (a non-empty string), got {value!r}")
    return value


def validate_card(card: Any) -> dict:
    """Check a card (the manifest's "card" value); return it. Raises CardError naming the field."""
    if card is None:
        raise CardError("card", "missing: a format-2 bundle needs a model card (see docs/MODEL_CARD.md)")
    if not isinstance(card, dict):
        raise CardError("card", f"must be a JSON object, got {type(card).__name__}")
    for key in REQUIRED_FIELDS:
        if key not in card:
            raise CardError(f"card.{key}", "missing (see docs/MODEL_CARD.md for the fields)")
    _text(card, "name")
    _text(card, "version")
    _text(card, "licence")
    use = card["intended_use"]
    if use not in INTENDED_USES:
        raise CardError("card.intended_use", f"{use!r} is not one of {', '.join(INTENDED_USES)}")
    if use == "clinical":
        regulatory = card.get("regulatory")
        if not isinstance(regulatory, str) or not regulatory.strip():
            raise CardError("card.regulatory", "intended use 'clinical' needs the clearance it rests on")
    data = card["training_data"]
    if not isinstance(data, dict) or not str(data.get("description") or "").strip():
        raise CardError("card.training_data", "must be an object with a non-empty 'description'")
    if not isinstance(data.get("synthetic"), bool):
        raise CardError("card.training_data.synthetic", "must be true or false")
    evaluation = card["evaluation"]
    if not isinstance(evaluation, dict):
        raise CardError("card.evaluation", "must be an object with 'metrics' and 'command'")
    if not isinstance(evaluation.get("metrics"), dict):
        raise CardError("card.evaluation.metrics", "missing or not an object")
    if not isinstance(evaluation.get("command"), str):
        raise CardError("card.evaluation.command", "missing: the command that produced the metrics")
    limitations = card["limitations"]
    if not isinstance(limitations, list) or not all(isinstance(x, str) and x.strip() for x in limitations):
        raise CardError("card.limitations", "must be a list of non-empty strings")
    return card


def legacy_card(manifest: dict, name: str, version: str) -> dict:
    """The card a format-1 bundle (no card) is treated as having: research use, nothing known."""
    return {
        "name": name,
        "version": version,
        "intended_use": "research",
        "training_data": {
            "description": "not recorded (format-1 bundle, written before model cards)",
            "synthetic": False,
        },
        "evaluation": {"metrics": {}, "command": "", "summary": "not recorded"},
        "limitations": ["A format-1 bundle: no model card; treated as research use.", PRIVATE_CODES_LIMITATION],
        "licence": "not recorded",
        "legacy": True,
    }


def notice(card: dict) -> str | None:
    """The notice every result of this model carries where it leaves the machine, None for a
    model cleared for clinical use. E.g. "For research use only; not for diagnostic use; model
    trained on synthetic data"."""
    use = card.get("intended_use", "research")
    if use == "clinical":
        return None
    text = "For research use only" if use == "research" else "For clinical evaluation only"
    text += "; not for diagnostic use"
    if (card.get("training_data") or {}).get("synthetic"):
        text += "; model trained on synthetic data"
    return text


def _lines(value: Any, indent: str = "  ") -> list[str]:
    if isinstance(value, dict):
        out = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                out.append(f"{indent}{key}:")
                out += _lines(item, indent + "  ")
            else:
                out.append(f"{indent}{key}: {item}")
        return out
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, (dict, list)) and item:
                nested = _lines(item, indent + "  ")
                out.append(f"{indent}- {nested[0].strip()}")
                out += nested[1:]
            else:
                out.append(f"{indent}- {item}")
        return out
    return [f"{indent}{value}"]


def format_card(card: dict) -> str:
    """The card as `radz bundle info` prints it."""
    use = card.get("intended_use", "?")
    lines = [
        f"model card: {card.get('name')} {card.get('version')} (hash {card.get('hash', '?')})",
        f"intended use: {use} ({INTENDED_USES.get(use, 'unknown')})",
    ]
    shown = notice(card)
    if shown:
        lines.append(f"notice on every result: {shown}")
    if card.get("regulatory"):
        lines.append(f"regulatory: {card['regulatory']}")
    lines.append(f"licence: {card.get('licence')}")
    if card.get("manufacturer"):
        lines.append(f"manufacturer: {card['manufacturer']}")
    lines.append("training data:")
    lines += _lines(card.get("training_data") or {})
    lines.append("evaluation:")
    lines += _lines(card.get("evaluation") or {})
    lines.append("known limitations:")
    lines += _lines(card.get("limitations") or [])
    if card.get("legacy"):
        lines.append("(format-1 bundle: this card is the default, not recorded by the bundle)")
    return "\n".join(lines)
