"""What node code may use while it runs: files, models, device, progress and cancellation."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from sdfleet.engine.files import ModelFiles
from sdfleet.engine.image_admission import DEFAULT_MAX_IMAGE_PIXELS
from sdfleet.engine.model_loader import ModelLoader


@dataclass
class NodeContext:
    """A narrow view of the engine handed to each node's execute function."""

    node_id: str
    files: ModelFiles
    models: ModelLoader
    device: torch.device
    dtype: torch.dtype
    report_progress: Callable[[int, int, torch.Tensor | None], None]
    check_cancel: Callable[[], None]
    graph: Mapping[str, Any] = field(default_factory=dict)
    extra_pnginfo: Mapping[str, Any] = field(default_factory=dict)
    #: A1111 infotext of image `index` of an output node (None: no sampler feeds it).
    infotext: Callable[[str, int], str | None] = lambda node_id, index: None
    #: The seed image `index` of an output node was made with (A1111 numbers a batch seed, seed + 1, …).
    image_seed: Callable[[str, int], int | None] = lambda node_id, index: None
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS  #: LoadImage refuses larger headers before decoding
