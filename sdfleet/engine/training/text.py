"""Captions → the UNet's conditioning, as diffusers' LoRA training scripts compute it (SD: the last hidden state;
SDXL: both encoders' penultimate states side by side and the second encoder's pooled output)."""

from __future__ import annotations

import torch

from sdfleet.engine.training.base_model import BaseModel


def _ids(tokenizer, captions: list[str], device: str) -> torch.Tensor:
    return tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt").input_ids.to(device)


def encode_captions(base: BaseModel, captions: list[str], *, device: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(hidden states B×77×C, pooled B×P or None)."""
    if not base.is_xl:
        return base.text_encoder(_ids(base.tokenizer, captions, device))[0], None
    states, pooled = [], None
    for encoder, tokenizer in ((base.text_encoder, base.tokenizer), (base.text_encoder_2, base.tokenizer_2)):
        out = encoder(_ids(tokenizer, captions, device), output_hidden_states=True)
        pooled = out[0]
        states.append(out.hidden_states[-2])
    return torch.cat(states, dim=-1), pooled


class CaptionCache:
    """Encoded captions kept by text while the text encoders are frozen (each caption is encoded once)."""

    def __init__(self, base: BaseModel, *, device: str) -> None:
        self._base = base
        self._device = device
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}

    @torch.no_grad()
    def get(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        missing = [c for c in dict.fromkeys(captions) if c not in self._cache]
        for caption in missing:  # one at a time: a caption's encoding never depends on its batch
            hidden, pooled = encode_captions(self._base, [caption], device=self._device)
            self._cache[caption] = (hidden[0], None if pooled is None else pooled[0])
        hidden = torch.stack([self._cache[c][0] for c in captions])
        pooled = None if self._cache[captions[0]][1] is None else torch.stack([self._cache[c][1] for c in captions])
        return hidden, pooled


def sdxl_time_ids(*, original: tuple[int, int], crop: tuple[int, int], target: tuple[int, int]) -> list[int]:
    """SDXL's size conditioning: (original h, w, crop top, left, target h, w)."""
    return [original[0], original[1], crop[0], crop[1], target[0], target[1]]
