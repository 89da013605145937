"""Textual-inversion embeddings: loading the files A1111 and ComfyUI read, and picking vectors per encoder."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

#: Encoder keys, as SDXL embedding files name their two tensors (single-tensor files load as "").
CLIP_L = "clip_l"
CLIP_G = "clip_g"
CLIP_H = "clip_h"
SINGLE = ""


class EmbeddingFileError(ValueError):
    """A file in the embeddings folder that holds no textual-inversion vectors."""


@dataclass(frozen=True, eq=False)
class Embedding:
    """An embedding's name (its file name without suffix) and vectors per encoder key, each [count, width]."""

    name: str
    vectors: Mapping[str, torch.Tensor]

    @property
    def length(self) -> int:
        """How many token positions the embedding fills."""
        return max(v.shape[0] for v in self.vectors.values())

    def a1111_vectors(self, key: str, width: int) -> torch.Tensor | None:
        """A1111: SDXL's encoders take the tensor named for them, SD 1.x/2.x (key "") a lone tensor."""
        vectors = self.vectors.get(key)
        return vectors if vectors is not None and vectors.shape[-1] == width else None

    def comfy_vectors(self, key: str, width: int) -> torch.Tensor | None:
        """ComfyUI: the tensor named for the encoder, else the file's first one; None when the width differs."""
        vectors = self.vectors.get(key)
        if vectors is None:
            vectors = next(iter(self.vectors.values()))
        return vectors if vectors.shape[-1] == width else None


def _as_matrix(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.reshape(-1, tensor.shape[-1]).float() if tensor.ndim != 1 else tensor[None].float()


def load_embedding(path: Path, *, name: str) -> Embedding:
    """Read an embedding from a safetensors file (A1111's `emb_params`, SDXL's `clip_l`/`clip_g`, a lone tensor)."""
    tensors = load_file(str(path), device="cpu")
    if CLIP_L in tensors or CLIP_G in tensors:
        vectors = {k: _as_matrix(tensors[k]) for k in (CLIP_L, CLIP_G) if k in tensors}
    elif "emb_params" in tensors:
        vectors = {SINGLE: _as_matrix(tensors["emb_params"])}
    else:
        params = [k for k in tensors if k.startswith("string_to_param.")]
        if len(params) == 1:
            vectors = {SINGLE: _as_matrix(tensors[params[0]])}
        elif len(tensors) == 1:
            vectors = {SINGLE: _as_matrix(next(iter(tensors.values())))}
        else:
            raise EmbeddingFileError(f"{path.name} holds no textual-inversion vectors "
                                     f"(expected emb_params, clip_l/clip_g or a single tensor)")
    if any(v.shape[0] == 0 for v in vectors.values()):
        raise EmbeddingFileError(f"{path.name} holds an empty embedding")
    return Embedding(name, vectors)
