"""Model handles flowing between nodes, loading them through the model cache, and LoRA application."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    ControlNetModel,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from diffusers.loaders.lora_base import (
    disable_lora_for_text_encoder,
    enable_lora_for_text_encoder,
    set_adapters_for_text_encoder,
)
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from sdfleet.engine.files import ModelFile
from sdfleet.engine.model_cache import ModelCache
from sdfleet.engine.textual_inversion import Embedding, load_embedding

MAX_LORAS_PER_CHECKPOINT = 8


@dataclass(frozen=True)
class LoraApplication:
    """One LoRA applied at a strength."""

    file: ModelFile
    strength: float


@dataclass(frozen=True)
class ModelRef:
    """A MODEL value: a checkpoint's UNet plus the LoRAs patched onto it and model patches (model_patches.py)."""

    checkpoint: ModelFile | ComponentFiles
    loras: tuple[LoraApplication, ...] = ()
    patches: tuple[Any, ...] = ()


@dataclass(frozen=True)
class ComponentFiles:
    """Separate files standing in for a checkpoint: a UNet file (UNETLoader, `kind` "unet") or text-encoder
    files (CLIPLoader "stable_diffusion", DualCLIPLoader "sdxl"). Handled like a checkpoint ModelFile."""

    kind: str
    files: tuple[ModelFile, ...]

    @property
    def sha256(self) -> str:
        """One cache key for the set."""
        return hashlib.sha256("|".join([self.kind, *(f.sha256 for f in self.files)]).encode()).hexdigest()

    @property
    def path(self) -> Path:
        return self.files[0].path


@dataclass(frozen=True)
class ClipRef:
    """A CLIP value: a checkpoint's text encoders, their LoRAs and the last layer used (None = family default)."""

    checkpoint: ModelFile | ComponentFiles
    loras: tuple[LoraApplication, ...] = ()
    stop_at_layer: int | None = None


@dataclass(frozen=True)
class VaeRef:
    """A VAE value: a checkpoint's VAE or a separate VAE file."""

    file: ModelFile
    standalone: bool = False


@dataclass(frozen=True)
class ControlNetRef:
    """A CONTROL_NET value."""

    file: ModelFile


@dataclass
class Checkpoint:
    """A loaded checkpoint: diffusers components, its family and scheduler config, and loaded LoRA adapters."""

    family: str
    unet: UNet2DConditionModel | None  # None: text encoders only (CLIPLoader)
    vae: AutoencoderKL | None  # None: a UNet or text-encoder file
    text_encoder: CLIPTextModel | None
    tokenizer: CLIPTokenizer | None
    text_encoder_2: CLIPTextModelWithProjection | None
    tokenizer_2: CLIPTokenizer | None
    scheduler_config: dict[str, Any]
    pipeline: Any = None
    adapters: OrderedDict[str, set[str]] = field(default_factory=OrderedDict)
    active: dict[str, tuple[tuple[str, float], ...]] = field(default_factory=dict)


def _load_folder(path: Path, *, device: str, dtype: torch.dtype) -> Checkpoint:
    """Load a diffusers-format folder (what save_pretrained writes)."""
    import json

    index = json.loads((path / "model_index.json").read_text())
    unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", torch_dtype=dtype)
    vae = AutoencoderKL.from_pretrained(path, subfolder="vae", torch_dtype=dtype)
    te = CLIPTextModel.from_pretrained(path / "text_encoder", dtype=dtype) if index.get("text_encoder", [None])[0] \
        else None
    tok = CLIPTokenizer.from_pretrained(path / "tokenizer") if te is not None else None
    te2 = tok2 = None
    if index.get("text_encoder_2", [None])[0]:
        te2 = CLIPTextModelWithProjection.from_pretrained(path / "text_encoder_2", dtype=dtype)
        tok2 = CLIPTokenizer.from_pretrained(path / "tokenizer_2")
    scheduler_config = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
    if te2 is not None:
        family = "sdxl" if te is not None else "sdxl_refiner"
    else:
        family = "sd2" if scheduler_config.get("prediction_type") == "v_prediction" else "sd1"
    return Checkpoint(family, unet.to(device), vae.to(device), te and te.to(device), tok,
                      te2 and te2.to(device), tok2, scheduler_config)


def _load_file(path: Path, *, device: str, dtype: torch.dtype) -> Checkpoint:
    """Load a single-file (A1111/LDM layout) checkpoint with the packaged configs."""
    from sdfleet.engine.checkpoints import load_checkpoint

    parts = load_checkpoint(path, device=device, dtype=dtype)
    return Checkpoint(parts.family, parts.unet, parts.vae, parts.text_encoder, parts.tokenizer,
                      parts.text_encoder_2, parts.tokenizer_2, dict(parts.scheduler_config))


def _vae_dtype(vae: AutoencoderKL, dtype: torch.dtype) -> torch.dtype:
    # SDXL's VAE overflows in fp16; diffusers upcasts it the same way.
    return torch.float32 if dtype == torch.float16 and getattr(vae.config, "force_upcast", False) else dtype


class ModelLoader:
    """Turns model handles into loaded modules on the engine's device, through the model cache."""

    def __init__(self, cache: ModelCache, *, device: str, dtype: torch.dtype) -> None:
        self.cache = cache
        self.device = device
        self.dtype = dtype

    def checkpoint(self, file: ModelFile | ComponentFiles) -> Checkpoint:
        """The loaded checkpoint for `file` (from cache, or loaded now); component files give a checkpoint
        with only their parts (a UNet, or text encoders)."""
        if isinstance(file, ComponentFiles):
            return self.cache.get_or_load(f"{file.kind}:{file.sha256}", lambda: self._load_components(file))
        return self.cache.get_or_load(f"checkpoint:{file.sha256}", lambda: self._load_checkpoint(file.path))

    def _load_components(self, files: ComponentFiles) -> Checkpoint:
        from sdfleet.engine.component_files import load_text_encoder_files, load_unet_file

        with torch.inference_mode(False):
            if files.kind == "unet":
                loaded = load_unet_file(files.path, device=self.device, dtype=self.dtype)
                ckpt = Checkpoint(loaded.family, loaded.unet, None, None, None, None, None, loaded.scheduler_config)
            else:
                encoders = load_text_encoder_files([f.path for f in files.files], kind=files.kind,
                                                   device=self.device, dtype=self.dtype)
                ckpt = Checkpoint(encoders.family, None, None, encoders.text_encoder, encoders.tokenizer,
                                  encoders.text_encoder_2, encoders.tokenizer_2, {})
        for module in (ckpt.unet, ckpt.text_encoder, ckpt.text_encoder_2):
            if module is not None:
                module.eval().requires_grad_(False)
        return ckpt

    def _load_checkpoint(self, path: Path) -> Checkpoint:
        loader = _load_folder if path.is_dir() else _load_file
        with torch.inference_mode(False):
            ckpt = loader(path, device=self.device, dtype=self.dtype)
        if _vae_dtype(ckpt.vae, self.dtype) != ckpt.vae.dtype:
            ckpt.vae.to(dtype=torch.float32)
        for module in (ckpt.unet, ckpt.vae, ckpt.text_encoder, ckpt.text_encoder_2):
            if module is not None:
                module.eval().requires_grad_(False)
        return ckpt

    def vae(self, ref: VaeRef) -> AutoencoderKL:
        """The VAE module for a VAE handle."""
        if not ref.standalone:
            return self.checkpoint(ref.file).vae
        return self.cache.get_or_load(f"vae:{ref.file.sha256}", lambda: self._load_vae(ref.file.path))

    def _load_vae(self, path: Path) -> AutoencoderKL:
        if path.is_dir():
            vae = AutoencoderKL.from_pretrained(path, torch_dtype=self.dtype)
        else:
            from sdfleet.engine.checkpoints import load_vae

            vae = load_vae(path, device=self.device, dtype=self.dtype)
        if _vae_dtype(vae, self.dtype) != vae.dtype:
            vae.to(dtype=torch.float32)
        return vae.to(self.device).eval().requires_grad_(False)

    def controlnet(self, ref: ControlNetRef) -> ControlNetModel:
        """The ControlNet module for a handle: an original (LDM) file such as `control_v11p_sd15_*`, a diffusers
        folder, or a diffusers-keyed file with its config beside."""
        def load() -> ControlNetModel:
            from sdfleet.engine.checkpoints import read_state_dict
            from sdfleet.engine.controlnet_files import is_ldm_controlnet, load_ldm_controlnet

            path = ref.file.path
            state_dict = None if path.is_dir() else read_state_dict(path)[0]
            if path.is_dir():
                model = ControlNetModel.from_pretrained(path, torch_dtype=self.dtype)
            elif is_ldm_controlnet(state_dict):
                model = load_ldm_controlnet(state_dict)
                if model.dtype != self.dtype:
                    model.to(dtype=self.dtype)
            else:
                model = ControlNetModel.from_single_file(path, config=str(path.parent), torch_dtype=self.dtype)
            return model.to(self.device).eval().requires_grad_(False)
        return self.cache.get_or_load(f"controlnet:{ref.file.sha256}", load)

    def embedding(self, file: ModelFile, *, name: str) -> Embedding:
        """A textual-inversion embedding (kept on the CPU; vectors move to the encoder when used)."""
        return self.cache.get_or_load(
            f"embedding:{file.sha256}:{name}", lambda: load_embedding(file.path, name=name),
            size=lambda e: sum(v.numel() * v.element_size() for v in e.vectors.values()))

    # LoRA -----------------------------------------------------------------------------------

    def apply_unet_loras(self, ckpt: Checkpoint, loras: tuple[LoraApplication, ...]) -> None:
        """Make exactly `loras` active on the UNet, at their strengths, without reloading the base weights."""
        self._apply(ckpt, "unet", loras)

    def apply_clip_loras(self, ckpt: Checkpoint, loras: tuple[LoraApplication, ...]) -> None:
        """Make exactly `loras` active on the text encoders."""
        self._apply(ckpt, "text_encoder", loras)
        if ckpt.text_encoder_2 is not None:
            self._apply(ckpt, "text_encoder_2", loras)

    def _apply(self, ckpt: Checkpoint, component: str, loras: tuple[LoraApplication, ...]) -> None:
        names = [(self._ensure_adapter(ckpt, lora.file), lora.strength) for lora in loras]
        wanted = tuple((n, s) for n, s in names if component in ckpt.adapters[n])
        if ckpt.active.get(component, ()) == wanted:
            return
        module = getattr(ckpt, component)
        if not wanted:
            if component == "unet":
                module.disable_lora()
            else:
                disable_lora_for_text_encoder(module)
        elif component == "unet":
            module.enable_lora()
            module.set_adapters([n for n, _ in wanted], weights=[s for _, s in wanted])
        else:
            enable_lora_for_text_encoder(module)
            set_adapters_for_text_encoder([n for n, _ in wanted], module, [s for _, s in wanted])
        ckpt.active[component] = wanted

    def _ensure_adapter(self, ckpt: Checkpoint, file: ModelFile) -> str:
        name = f"lora_{file.sha256[:16]}"
        if name in ckpt.adapters:
            ckpt.adapters.move_to_end(name)
            return name
        if len(ckpt.adapters) >= MAX_LORAS_PER_CHECKPOINT:
            self._drop_oldest_adapter(ckpt)
        started = time.perf_counter()
        pipeline = self._pipeline(ckpt)
        with torch.inference_mode(False):
            pipeline.load_lora_weights(str(file.path), adapter_name=name)
        self.cache.record_load(f"lora:{file.sha256}", time.perf_counter() - started)
        loaded = {c for c in ("unet", "text_encoder", "text_encoder_2")
                  if name in (getattr(getattr(ckpt, c), "peft_config", None) or {})}
        if not loaded:
            raise ValueError(f"LoRA file {file.path.name} has no weights matching this checkpoint")
        ckpt.adapters[name] = loaded
        # A freshly loaded adapter becomes active everywhere; force the next apply to set the state.
        ckpt.active.clear()
        return name

    def _drop_oldest_adapter(self, ckpt: Checkpoint) -> None:
        oldest = next(iter(ckpt.adapters))
        self._pipeline(ckpt).delete_adapters(oldest)
        del ckpt.adapters[oldest]
        ckpt.active.clear()

    def _pipeline(self, ckpt: Checkpoint) -> Any:
        """A diffusers pipeline around the cached modules, used only for its LoRA loading code."""
        if ckpt.pipeline is None:
            scheduler = EulerDiscreteScheduler.from_config(ckpt.scheduler_config)
            if ckpt.text_encoder_2 is not None:
                ckpt.pipeline = StableDiffusionXLPipeline(
                    vae=ckpt.vae, text_encoder=ckpt.text_encoder, text_encoder_2=ckpt.text_encoder_2,
                    tokenizer=ckpt.tokenizer, tokenizer_2=ckpt.tokenizer_2, unet=ckpt.unet, scheduler=scheduler)
            else:
                ckpt.pipeline = StableDiffusionPipeline(
                    vae=ckpt.vae, text_encoder=ckpt.text_encoder, tokenizer=ckpt.tokenizer, unet=ckpt.unet,
                    scheduler=scheduler, safety_checker=None, feature_extractor=None,
                    requires_safety_checker=False)
        return ckpt.pipeline
