"""Prompts → conditioning tensors, in A1111's dialect (A1111 payloads) and ComfyUI's (graphs).

Both cut a prompt into 77-token chunks (`prompt_chunks`), run each chunk through the text encoders and
concatenate the results; SDXL concatenates its two encoders' hidden states and takes the pooled output
of the first chunk. They differ in how a weight reaches the embeddings:
- A1111 ("Original" emphasis): each token's output is multiplied by its weight, then the chunk is
  rescaled so its mean is what it was before;
- ComfyUI: each weighted token's output is moved away from the empty prompt's output at the same
  position, `(z - z_empty) * w + z_empty`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from sdfleet.engine.prompt_chunks import Chunk, SpecialTokens, a1111_chunks, comfy_chunks, empty_chunk
from sdfleet.engine.prompt_weights import parse_a1111_emphasis, parse_comfy_weights
from sdfleet.engine.textual_inversion import CLIP_G, CLIP_H, CLIP_L, SINGLE, Embedding


@dataclass(frozen=True)
class TextEncoder:
    """One text encoder of a checkpoint and which of its outputs the conditioning uses."""

    model: Any
    tokenizer: Any
    #: hidden_states index to read; None reads the last layer's output.
    layer: int | None
    #: apply the final layer norm to a hidden state (SD 1.x/2.x clip skip; never for SDXL)
    final_norm: bool
    #: the key an embedding file names this encoder's vectors with
    embedding_key: str

    @property
    def width(self) -> int:
        """The token embedding width."""
        return self.model.get_input_embeddings().weight.shape[1]


@dataclass(frozen=True)
class Encoded:
    """One prompt's conditioning: token embeddings [1, tokens, dim] and SDXL's pooled embedding [1, dim]."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None


def encoders_for(ckpt: Any, *, dialect: str, stop_at_layer: int | None) -> list[TextEncoder]:
    """The encoders a checkpoint's prompts go through, in the order their outputs are concatenated.

    A1111 applies clip skip to SD 1.x only; ComfyUI's CLIPSetLastLayer applies to every family."""
    a1111 = dialect == "a1111"
    if ckpt.text_encoder_2 is None or ckpt.family in ("sd1", "sd2"):
        if ckpt.family == "sd2" and a1111:
            stop_at_layer = None
        layer = None if stop_at_layer in (None, -1) else stop_at_layer
        key = SINGLE if a1111 else (CLIP_H if ckpt.family == "sd2" else CLIP_L)
        return [TextEncoder(ckpt.text_encoder, ckpt.tokenizer, layer, layer is not None, key)]
    layer = -2 if a1111 or stop_at_layer is None else stop_at_layer
    encoders = []
    if ckpt.text_encoder is not None:
        encoders.append(TextEncoder(ckpt.text_encoder, ckpt.tokenizer, layer, False, CLIP_L))
    encoders.append(TextEncoder(ckpt.text_encoder_2, ckpt.tokenizer_2, layer, False, CLIP_G))
    return encoders


@contextmanager
def _vectors_in_place(model: Any, rows: list[tuple[int, int, torch.Tensor]]) -> Iterator[None]:
    """While encoding, token embedding rows (batch row, position, vectors) are the embedding's vectors."""
    if not rows:
        yield
        return

    def replace(_module: Any, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        output = output.clone()
        for row, start, vectors in rows:
            output[row, start:start + vectors.shape[0]] = vectors.to(output.device, output.dtype)
        return output

    handle = model.get_input_embeddings().register_forward_hook(replace)
    try:
        yield
    finally:
        handle.remove()


def run_encoder(encoder: TextEncoder, chunks: Sequence[Chunk], *,
                vectors_of: Callable[[Embedding], torch.Tensor | None],
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Encode chunks as one batch: hidden states [n, 77, dim] and projected pooled outputs [n, dim] or None."""
    special = SpecialTokens.of(encoder.tokenizer)
    ids = torch.tensor([c.tokens for c in chunks], dtype=torch.long)
    rows = []
    for row, chunk in enumerate(chunks):
        for insert in chunk.inserts:
            vectors = vectors_of(insert.embedding)
            if vectors is None:  # the embedding has no vectors this wide: those positions read as padding
                ids[row, insert.start:insert.start + insert.count] = special.pad
            else:
                rows.append((row, insert.start, vectors[insert.first:insert.first + insert.count]))
    model = encoder.model
    mask = None
    if getattr(model.config, "use_attention_mask", False):
        first_eos = (ids == special.eos).int().argmax(dim=1, keepdim=True)
        mask = (torch.arange(ids.shape[1])[None] <= first_eos).long().to(device)
    with _vectors_in_place(model, rows):
        out = model(ids.to(device), attention_mask=mask, output_hidden_states=encoder.layer is not None)
    if encoder.layer is None:
        hidden = out.last_hidden_state
    else:
        hidden = out.hidden_states[encoder.layer]
        if encoder.final_norm:
            hidden = model.text_model.final_layer_norm(hidden) if hasattr(model, "text_model") \
                else model.final_layer_norm(hidden)
    return hidden, getattr(out, "text_embeds", None)


# -- A1111 -------------------------------------------------------------------------------------------


def a1111_usable(embeddings: Sequence[Embedding], encoders: Sequence[TextEncoder]) -> list[Embedding]:
    """The embeddings A1111 would load for this model: vectors of the right width for every encoder."""
    return [e for e in embeddings
            if all(e.a1111_vectors(enc.embedding_key, enc.width) is not None for enc in encoders)]


def encode_a1111(encoders: Sequence[TextEncoder], texts: Sequence[str], *, embeddings: Sequence[Embedding],
                 device: torch.device, zero_if_empty: bool = False) -> list[Encoded]:
    """Encode a prompt's scheduled texts as A1111 batches them: padded to one chunk count, emphasis per chunk.

    `zero_if_empty`: an empty negative prompt of SDXL (base or refiner) is all zeros in A1111."""
    usable = a1111_usable(embeddings, encoders)
    parts, pooled = [], None
    for encoder in encoders:
        per_text = [a1111_chunks(parse_a1111_emphasis(t), tokenizer=encoder.tokenizer, embeddings=usable)
                    for t in texts]
        count = max(len(chunks) for chunks in per_text)
        blank = empty_chunk(SpecialTokens.of(encoder.tokenizer))
        # chunk-major order: all texts' first chunks, then all second chunks …
        batch = [chunks[c] if c < len(chunks) else blank for c in range(count) for chunks in per_text]
        hidden, projected = run_encoder(
            encoder, batch, vectors_of=lambda e, k=encoder.embedding_key, w=encoder.width: e.a1111_vectors(k, w),
            device=device)
        weights = torch.tensor([c.weights for c in batch], dtype=hidden.dtype, device=hidden.device)
        hidden = hidden.reshape(count, len(texts), *hidden.shape[1:])
        weights = weights.reshape(count, len(texts), -1, 1)
        original_mean = hidden.mean(dim=(1, 2, 3), keepdim=True)
        hidden = hidden * weights
        hidden = hidden * (original_mean / hidden.mean(dim=(1, 2, 3), keepdim=True))
        parts.append(torch.cat(list(hidden), dim=1))  # [texts, count * 77, dim]
        if projected is not None:
            pooled = projected[: len(texts)]
    embeds = torch.cat(parts, dim=-1)
    if zero_if_empty and pooled is not None and all(t == "" for t in texts):
        embeds, pooled = torch.zeros_like(embeds), torch.zeros_like(pooled)
    return [Encoded(embeds[i:i + 1], pooled[i:i + 1] if pooled is not None else None) for i in range(len(texts))]


# -- ComfyUI -----------------------------------------------------------------------------------------


def encode_comfy(encoders: Sequence[TextEncoder], text: str | Sequence[str], *,
                 find_embedding: Callable[[str], Embedding | None], device: torch.device) -> Encoded:
    """Encode a prompt as ComfyUI's CLIPTextEncode does.

    A list gives each encoder its own text (CLIPTextEncodeSDXL's text_l and text_g); the shorter one is
    padded with the empty prompt's chunks to the other's chunk count, as ComfyUI does."""
    texts = [text] * len(encoders) if isinstance(text, str) else list(text)
    per_encoder = [comfy_chunks(parse_comfy_weights(t), tokenizer=encoder.tokenizer, find_embedding=find_embedding)
                   for encoder, t in zip(encoders, texts, strict=True)]
    count = max(len(chunks) for chunks in per_encoder)
    parts, pooled = [], None
    for encoder, chunks in zip(encoders, per_encoder, strict=True):
        chunks = chunks + [empty_chunk(SpecialTokens.of(encoder.tokenizer))] * (count - len(chunks))
        weighted = any(w != 1.0 for c in chunks for w in c.weights)
        batch = chunks + [empty_chunk(SpecialTokens.of(encoder.tokenizer))] if weighted else chunks
        hidden, projected = run_encoder(
            encoder, batch, vectors_of=lambda e, k=encoder.embedding_key, w=encoder.width: e.comfy_vectors(k, w),
            device=device)
        if weighted:
            empty = hidden[-1]
            hidden = hidden[:-1]
            weights = torch.tensor([c.weights for c in chunks], dtype=hidden.dtype, device=hidden.device)[..., None]
            hidden = torch.where(weights != 1.0, (hidden - empty) * weights + empty, hidden)
        parts.append(hidden.reshape(1, -1, hidden.shape[-1]))
        if projected is not None:
            pooled = projected[:1]
    length = min(p.shape[1] for p in parts)
    return Encoded(torch.cat([p[:, :length] for p in parts], dim=-1), pooled)

