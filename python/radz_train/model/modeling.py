"""The LLaVA-RadZ model: vision tower -> mlp2x_gelu projector -> causal decoder, with learnable
modality tokens appended to image and text inputs and features read on the decoder side.

Image side:  <s> [image prompt] <image patch embeddings> <ImgCls_0> .. <ImgCls_{N-1}>
Text side:   <s> [report or class prompt] [question] <TxtCls_0> .. <TxtCls_{M-1}> <pad>...
Features come from decoder layer `feature_layer` (default: penultimate): global = mean of the
modality-token states, local = mean of all other real positions, both L2-normalised. With no
modality tokens (an ablation) global is the last real token's state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from radz_train.model.config import ModelConfig


@dataclass
class Features:
    """L2-normalised decoder-side features, each [B, D]."""

    global_: torch.Tensor
    local: torch.Tensor


class MLP2xGelu(nn.Module):
    """LLaVA-1.5's projector; attribute names match llava-hf's multi_modal_projector."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(in_features, out_features)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(out_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(x)))


def pool_features(states: torch.Tensor, modality_mask: torch.Tensor, valid_mask: torch.Tensor) -> Features:
    """Global = mean over modality positions (or the last real token when there are none);
    local = mean over the other real positions. Masks are [B, L] bool."""
    valid = valid_mask.to(states.dtype)
    modality = (modality_mask & valid_mask).to(states.dtype)
    if bool(modality_mask.any()):
        global_ = (states * modality[..., None]).sum(1) / modality.sum(1, keepdim=True).clamp_min(1)
        other = valid - modality
    else:  # last-token features: the last real position of each row
        last = valid_mask.long().cumsum(1).argmax(1)
        global_ = states[torch.arange(states.shape[0], device=states.device), last]
        other = valid.clone()
        other[torch.arange(states.shape[0], device=states.device), last] = 0
    local = (states * other[..., None]).sum(1) / other.sum(1, keepdim=True).clamp_min(1)
    return Features(F.normalize(global_.float(), dim=-1), F.normalize(local.float(), dim=-1))


class RadzModel(nn.Module):
    """Encodes images and texts into the shared decoder-side feature space."""

    def __init__(
        self, config: ModelConfig, vision_tower: nn.Module, projector: nn.Module, decoder: nn.Module, tokenizer
    ) -> None:
        super().__init__()
        from radz_train.model.tokenizer import add_modality_tokens

        self.config = config
        self.vision_tower = vision_tower
        self.projector = projector
        self.decoder = decoder
        self.tokenizer = tokenizer
        image_ids, text_ids = add_modality_tokens(tokenizer, config.n_image_tokens, config.n_text_tokens)
        self.register_buffer("image_token_ids", torch.tensor(image_ids, dtype=torch.long), persistent=False)
        self.register_buffer("text_token_ids", torch.tensor(text_ids, dtype=torch.long), persistent=False)
        prompt = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        prompt += tokenizer(config.prompts.image, add_special_tokens=False)["input_ids"]
        self.register_buffer("image_prompt_ids", torch.tensor(prompt, dtype=torch.long), persistent=False)
        self.question_ids = tokenizer(" " + config.prompts.text_question, add_special_tokens=False)["input_ids"]

    # -- image side -----------------------------------------------------------------------------
    def image_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Projected patch embeddings [B, P, H] (LLaVA: a middle vision layer, CLS dropped)."""
        out = self.vision_tower(pixel_values=pixel_values, output_hidden_states=True)
        patches = out.hidden_states[self.config.vision.get("feature_layer", -2)]
        if self.config.vision["type"] == "clip":
            patches = patches[:, 1:]
        return self.projector(patches)

    def image_sequence(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder input embeddings of the image side and the modality-token mask."""
        embed = self.decoder.get_input_embeddings()
        patches = self.image_embeddings(pixel_values)
        batch = patches.shape[0]
        prompt = embed(self.image_prompt_ids)[None].expand(batch, -1, -1)
        tokens = embed(self.image_token_ids)[None].expand(batch, -1, -1)
        sequence = torch.cat([prompt.to(patches.dtype), patches, tokens.to(patches.dtype)], dim=1)
        mask = torch.zeros(sequence.shape[:2], dtype=torch.bool, device=sequence.device)
        if self.config.n_image_tokens:
            mask[:, -self.config.n_image_tokens :] = True
        return sequence, mask

    def encode_image(self, pixel_values: torch.Tensor) -> Features:
        sequence, modality_mask = self.image_sequence(pixel_values)
        attention_mask = torch.ones(sequence.shape[:2], dtype=torch.long, device=sequence.device)
        states = self._decoder_states(inputs_embeds=sequence, attention_mask=attention_mask)
        return pool_features(states, modality_mask, attention_mask.bool())

    # -- text side ------------------------------------------------------------------------------
    def tokenize(self, texts: list[str], with_question: bool = True, device=None) -> dict[str, torch.Tensor]:
        """Right-padded ids with the text modality tokens right after each text (before padding).

        Reports are lower-cased (paper) and truncated to fit max_text_length."""
        tok = self.tokenizer
        bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
        tail = (self.question_ids if with_question else []) + self.text_token_ids.tolist()
        budget = max(1, self.config.max_text_length - len(bos) - len(tail))
        encoded = tok([t.lower() for t in texts], add_special_tokens=False)["input_ids"]
        rows = [bos + ids[:budget] + tail for ids in encoded]
        length = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), length), tok.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(rows), length), dtype=torch.long)
        modality = torch.zeros((len(rows), length), dtype=torch.bool)
        n = self.config.n_text_tokens
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = torch.tensor(row)
            attention[i, : len(row)] = 1
            if n:
                modality[i, len(row) - n : len(row)] = True
        out = {"input_ids": input_ids, "attention_mask": attention, "modality_mask": modality}
        return {k: v.to(device) for k, v in out.items()} if device is not None else out

    def encode_text(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, modality_mask: torch.Tensor
    ) -> Features:
        states = self._decoder_states(input_ids=input_ids, attention_mask=attention_mask)
        return pool_features(states, modality_mask, attention_mask.bool())

    def encode_texts(self, texts: list[str], with_question: bool = True, batch_size: int = 64) -> Features:
        """Convenience for class prompts and knowledge descriptions (any number of texts)."""
        device = self.image_token_ids.device
        parts = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenize(texts[start : start + batch_size], with_question, device)
            parts.append(self.encode_text(**batch))
        return Features(torch.cat([p.global_ for p in parts]), torch.cat([p.local for p in parts]))

    # -- shared -----------------------------------------------------------------------------------
    def _decoder_states(self, **inputs) -> torch.Tensor:
        out = self.decoder(**inputs, output_hidden_states=True, use_cache=False)
        # hidden_states[0] = embeddings, [i] = output of layer i, [-1] = final (normed) output.
        return out.hidden_states[self.config.feature_layer]

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        modality_mask: torch.Tensor,
    ) -> tuple[Features, Features]:
        return self.encode_image(pixel_values), self.encode_text(input_ids, attention_mask, modality_mask)
