"""Upscaler models (ESRGAN, RealESRGAN, SwinIR, … — whatever spandrel recognises), loaded as ComfyUI loads them.

spandrel's package imports every architecture it knows, and two of them (LaMa, RestoreFormer: inpainting and
face restoration, never used here) import torchvision at module level. torchvision is not installed (its wheel
would pull a CUDA torch over the pinned CPU one), so a stand-in answers those imports while spandrel loads and
is removed right after: nothing else ever sees a `torchvision` module.
"""

from __future__ import annotations

import sys
import types
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file


class UpscaleModelError(ValueError):
    """A file that is not an upscaler model spandrel can run."""


@contextmanager
def _torchvision_stand_in():
    if "torchvision" in sys.modules or _installed("torchvision"):
        yield
        return

    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("torchvision is not installed (spandrel's LaMa and RestoreFormer need it)")

    names = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")
    modules = {name: types.ModuleType(name) for name in names}
    functional = modules["torchvision.transforms.functional"]
    functional.normalize = functional.rotate = unavailable  # type: ignore[attr-defined]
    functional.InterpolationMode = types.SimpleNamespace(NEAREST="nearest", BILINEAR="bilinear")  # type: ignore
    modules["torchvision.transforms"].functional = functional  # type: ignore[attr-defined]
    modules["torchvision"].transforms = modules["torchvision.transforms"]  # type: ignore[attr-defined]
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name in names:
            if sys.modules.get(name) is modules[name]:
                del sys.modules[name]


def _installed(name: str) -> bool:
    from importlib.util import find_spec

    return find_spec(name) is not None


@lru_cache(maxsize=1)
def _spandrel() -> Any:
    with _torchvision_stand_in():
        import spandrel
    return spandrel


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file, or else a pickle read with weights_only (no code runs); files may have no suffix."""
    try:
        return load_file(str(path))
    except Exception:  # not safetensors (safetensors raises several unrelated types for a bad header)
        pass
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UpscaleModelError(f"{Path(path).name}: neither safetensors nor a weights-only pickle ({exc})") from exc
    for key in ("params_ema", "params", "state_dict"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
            break
    if not isinstance(data, dict):
        raise UpscaleModelError(f"{Path(path).name}: no state dict inside")
    return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}


def load_upscale_model(path: Path, *, device: torch.device | str = "cpu") -> Any:
    """spandrel's ImageModelDescriptor for the file, in eval mode on `device`."""
    spandrel = _spandrel()
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(read_tensors(path))
    except spandrel.UnsupportedModelError as exc:
        raise UpscaleModelError(f"{Path(path).name}: not an upscaler architecture spandrel knows") from exc
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise UpscaleModelError(f"{Path(path).name}: a {descriptor.architecture.name} model is not an upscaler")
    return descriptor.to(device).eval()


def run_model(model: Any, pixels: torch.Tensor) -> torch.Tensor:
    """[B,C,H,W] 0..1 through the model, clamped to 0..1."""
    param = next(model.model.parameters())
    with torch.inference_mode():
        out = model(pixels.to(param.device, param.dtype))
    return out.float().clamp(0, 1)


def upscale_pil(model: Any, image: Image.Image) -> Image.Image:
    """A1111's `upscale_pil_patch`: the image fed as BGR 0..1, the output rounded back to an RGB image.

    (A1111 flips channels to BGR for every model; ComfyUI's ImageUpscaleWithModel feeds RGB.)"""
    bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1].transpose(2, 0, 1)) / 255
    out = run_model(model, torch.from_numpy(bgr).unsqueeze(0).float())[0]
    array = (255.0 * out.cpu().numpy().transpose(1, 2, 0)).round().astype(np.uint8)[:, :, ::-1]
    return Image.fromarray(np.ascontiguousarray(array), "RGB")


def model_scale(model: Any) -> int:
    """The model's upscale factor (4 for 4x-UltraSharp …)."""
    return int(model.scale)
