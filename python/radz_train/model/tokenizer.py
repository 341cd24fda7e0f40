"""Tokenizers: a checkpoint's own, or a byte-level BPE trained on the report corpus.

Modality tokens (<ImgCls_i>, <TxtCls_j>) are added to whichever tokenizer is used, as special
tokens, so they are never split and never produced from ordinary text.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

SPECIAL = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}


def modality_token_names(n_image: int, n_text: int) -> tuple[list[str], list[str]]:
    return [f"<ImgCls_{i}>" for i in range(n_image)], [f"<TxtCls_{j}>" for j in range(n_text)]


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 2000):
    """Byte-level BPE on lower-cased text (the paper lower-cases reports), as a HF fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=SPECIAL["unk_token"]))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL)


def load_tokenizer(path: str | Path):
    """A tokenizer saved with save_pretrained (tokenizer.json etc.), from a local folder only."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"tokenizer: {path} is not a folder")
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    return ensure_special_tokens(tokenizer)


def ensure_special_tokens(tokenizer):
    """Llama/Mistral tokenizers ship without a pad token: pad with unk (or eos)."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return tokenizer


def add_modality_tokens(tokenizer, n_image: int, n_text: int) -> tuple[list[int], list[int]]:
    """Add the modality tokens (idempotent) and return their ids."""
    image_names, text_names = modality_token_names(n_image, n_text)
    missing = [t for t in image_names + text_names if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    return tokenizer.convert_tokens_to_ids(image_names), tokenizer.convert_tokens_to_ids(text_names)
