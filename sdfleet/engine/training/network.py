"""The LoRA network: peft adapters on the UNet (and text encoders), saved in kohya/A1111's key layout.

Targets are kohya's LoRA set: the Linear and 1×1 Conv layers of the transformer blocks (attention, feed-forward,
proj_in/out) and the text encoders' attention and MLP. Keys are `lora_unet_<diffusers module path>`,
`lora_te_…` (SDXL: `lora_te1_…`, `lora_te2_…`) with `.lora_down.weight`, `.lora_up.weight` and `.alpha`, which
A1111, ComfyUI, kohya and diffusers' `load_lora_weights` all read."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model_state_dict, set_peft_model_state_dict

from sdfleet.engine.tensor_file import save_safetensors

UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2")
TEXT_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
ADAPTER = "default"


def kohya_prefixes(components) -> dict[str, str]:
    """component name → kohya key prefix for the modules that carry a LoRA."""
    xl = components.text_encoder_2 is not None and components.text_encoder is not None
    prefixes = {"unet": "lora_unet"}
    if components.text_encoder is not None:
        prefixes["text_encoder"] = "lora_te1" if xl else "lora_te"
    if components.text_encoder_2 is not None:
        prefixes["text_encoder_2"] = "lora_te2"
    return prefixes


def attach(components, *, rank: int, alpha: float, train_text_encoder: bool, init_seed: int) -> list[str]:
    """Add the LoRA adapter (B = 0, A gaussian from `init_seed`: training starts from the base model) to the UNet
    and, when asked, the text encoders; returns the names of the components that carry it."""
    trained = ["unet"] + ([n for n in ("text_encoder", "text_encoder_2") if getattr(components, n) is not None]
                          if train_text_encoder else [])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        for name in trained:
            targets = list(UNET_TARGETS if name == "unet" else TEXT_TARGETS)
            config = LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights="gaussian", target_modules=targets)
            getattr(components, name).add_adapter(config, adapter_name=ADAPTER)
    for name in trained:
        for param in getattr(components, name).parameters():
            if param.requires_grad:
                param.data = param.data.float()  # LoRA weights train in fp32 whatever the base's precision
    return trained


def adapter_state(components, trained: list[str]) -> dict[str, dict[str, torch.Tensor]]:
    """The adapter weights of each trained component (peft's names), detached copies on the CPU."""
    return {name: {k: v.detach().to("cpu", copy=True)
                   for k, v in get_peft_model_state_dict(getattr(components, name), adapter_name=ADAPTER).items()}
            for name in trained}


def load_adapter_state(components, state: dict[str, dict[str, torch.Tensor]]) -> None:
    """Put saved adapter weights back (resuming)."""
    for name, tensors in state.items():
        module = getattr(components, name)
        device = next(module.parameters()).device
        set_peft_model_state_dict(module, {k: v.to(device) for k, v in tensors.items()}, adapter_name=ADAPTER)


def to_kohya(state: dict[str, dict[str, torch.Tensor]], *, prefixes: dict[str, str], alpha: float,
             dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    """peft adapter weights → kohya/A1111 keys with one `.alpha` per module."""
    tensors: dict[str, torch.Tensor] = {}
    for component, weights in state.items():
        for key, value in weights.items():
            module, _, kind = key.rpartition(".lora_")
            if component.startswith("text_encoder") and not module.startswith("text_model."):
                module = f"text_model.{module}"  # transformers 5 drops the prefix; kohya keys keep it
            base = f"{prefixes[component]}_{module.replace('.', '_')}"
            suffix = "lora_down.weight" if kind.startswith("A") else "lora_up.weight"
            tensors[f"{base}.{suffix}"] = value.to(dtype).contiguous()
            tensors[f"{base}.alpha"] = torch.tensor(float(alpha), dtype=dtype)
    return tensors


def save_lora(path: Path, state: dict[str, dict[str, torch.Tensor]], *, prefixes: dict[str, str], alpha: float,
              metadata: dict[str, object], dtype: torch.dtype = torch.float16) -> Path:
    """Write the LoRA as a kohya-layout safetensors file; metadata values that are not text become JSON."""
    text = {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in metadata.items()}
    return save_safetensors(to_kohya(state, prefixes=prefixes, alpha=alpha, dtype=dtype), Path(path), metadata=text)
