"""Text -> embedding without torch: tokenizer.json (the `tokenizers` library) + text_encoder.onnx.

This is how the runtime adds classes from text alone (zero-shot): it lays the tokens out exactly
as radz_train's RadzModel.tokenize does, from the template the bundle's manifest records:

    [bos] lower(text)[:budget] [question ids] <TxtCls_0> .. <TxtCls_{M-1}> <pad> ...

with budget = max(1, max_length - len(bos) - len(question) - M), rows right-padded with pad_id.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from radz_engine.bundle.loader import Bundle
from radz_engine.errors import BundleError

__all__ = ["TextEncoder"]


class TextEncoder:
    """Encodes class prompts / knowledge descriptions into the bundle's embedding space.

    Args:
        bundle: a loaded Bundle.
        providers: ONNX Runtime execution providers (default CPU).
        session_options: optional onnxruntime.SessionOptions (e.g. thread counts).
    """

    def __init__(self, bundle: Bundle, providers: Sequence = ("CPUExecutionProvider",), session_options=None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.bundle = bundle
        text = bundle.manifest["text"]
        self.bos = [int(text["bos_id"])] if text.get("bos_id") is not None else []
        self.question = [int(i) for i in text["question_ids"]]
        self.modality = [int(i) for i in text["modality_token_ids"]]
        self.max_length = int(text["max_length"])
        self.pad_id = int(text["pad_id"])
        self.lowercase = bool(text.get("lowercase", True))
        self.templates = dict(text.get("templates", {}))
        tokenizer_path = bundle.file("tokenizer")
        try:
            self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as error:  # tokenizers raises a bare Exception on bad files
            raise BundleError(bundle.path, tokenizer_path.name, f"not a tokenizers file ({error})") from None
        # The layout is built here; the file's own truncation/padding settings must not interfere.
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.session = ort.InferenceSession(
            str(bundle.file("text_encoder")), session_options, providers=list(providers)
        )
        self.input_names = [i.name for i in self.session.get_inputs()]

    def tokenize(self, texts: Sequence[str], with_question: bool = True) -> dict[str, np.ndarray]:
        """input_ids, attention_mask [B, L] int64 and modality_mask [B, L] bool."""
        if isinstance(texts, str) or not len(texts):
            raise ValueError("texts: need a non-empty list of strings")
        tail = (self.question if with_question else []) + self.modality
        budget = max(1, self.max_length - len(self.bos) - len(tail))
        prepared = [t.lower() if self.lowercase else t for t in texts]
        encoded = self.tokenizer.encode_batch(prepared, add_special_tokens=False)
        rows = [self.bos + list(e.ids)[:budget] + tail for e in encoded]
        length = max(len(r) for r in rows)
        input_ids = np.full((len(rows), length), self.pad_id, dtype=np.int64)
        attention = np.zeros((len(rows), length), dtype=np.int64)
        modality = np.zeros((len(rows), length), dtype=bool)
        n = len(self.modality)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = row
            attention[i, : len(row)] = 1
            if n:
                modality[i, len(row) - n : len(row)] = True
        return {"input_ids": input_ids, "attention_mask": attention, "modality_mask": modality}

    def encode(self, texts: Sequence[str], with_question: bool = True, batch_size: int = 64) -> np.ndarray:
        """[N, D] float32, L2-normalised text global embeddings."""
        texts = list(texts)
        out = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenize(texts[start : start + batch_size], with_question)
            feeds = {name: batch[name] for name in self.input_names}
            out.append(self.session.run(None, feeds)[0])
        return np.concatenate(out).astype(np.float32, copy=False)

    def class_prompts(self, display_name: str) -> dict[str, str]:
        """The softmax and posneg prompts of a class, from the bundle's templates."""
        return {
            "softmax": self.templates["class"].format(display_name),
            "posneg_positive": self.templates["positive"].format(display_name),
            "posneg_negative": self.templates["negative"].format(display_name),
        }
