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
    infotext: Callable[[str], str | None] = lambda node_id: None
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS  #: LoadImage refuses larger headers before decoding
