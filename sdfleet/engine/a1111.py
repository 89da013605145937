"""Compiling A1111 txt2img / img2img payloads into the equivalent node graph."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sdfleet.engine.a1111_controlnet import apply_units, read_units
from sdfleet.engine.a1111_fields import (
    InvalidField,
    UnsupportedField,
    apply_infotext,
    check_fields,
    mask_blur,
    only_masked,
)
from sdfleet.engine.a1111_hires import PIXEL_UPSCALERS, HiresPlan, plan_hires
from sdfleet.engine.a1111_limits import read_float as _float
from sdfleet.engine.a1111_limits import read_int as _int
from sdfleet.engine.prompt_schedule import prompt_schedule
from sdfleet.engine.prompt_weights import PromptSyntaxError, parse_a1111_emphasis
from sdfleet.engine.sampler_names import UnknownSamplerName, prompt_schedule_steps, resolve
from sdfleet.modelfiles.titles import parse_title

LORA_TAG = re.compile(r"<lora:([^:>]+)((?::[^:>]*)*)>")


@dataclass(frozen=True)
class LoraTag:
    """A `<lora:name:te:unet>` tag from a prompt."""

    name: str
    text_encoder: float
    unet: float


@dataclass
class CompiledA1111:
    """The graph for a payload, the resolved seed, and the effective parameters (for `info`)."""

    graph: dict[str, Any]
    seed: int
    params: dict[str, Any]
    all_seeds: list[int] = field(default_factory=list)
    all_subseeds: list[int] = field(default_factory=list)


def parse_lora_tags(prompt: str) -> tuple[str, list[LoraTag]]:
    """Remove `<lora:name[:te[:unet]]>` tags from a prompt; return the clean prompt and the tags."""
    tags: list[LoraTag] = []
    for match in LORA_TAG.finditer(prompt):
        args = [a for a in match.group(2).split(":")[1:] if a != ""]
        positional = [a for a in args if "=" not in a]
        named = dict(a.split("=", 1) for a in args if "=" in a)
        try:
            te = float(named.get("te", positional[0] if positional else 1.0))
            unet = float(named.get("unet", positional[1] if len(positional) > 1 else te))
        except ValueError:
            raise InvalidField("prompt", f"prompt: bad LoRA weight in {match.group(0)!r}") from None
        tags.append(LoraTag(match.group(1).strip(), te, unet))
    clean = re.sub(r"\s{2,}", " ", LORA_TAG.sub("", prompt)).strip().strip(",").strip()
    return clean, tags


def _check_prompt(name: str, text: str, steps: int) -> None:
    """Every text the prompt's schedule uses must read as A1111 emphasis (weights that are numbers)."""
    for scheduled in prompt_schedule(text, steps):
        try:
            parse_a1111_emphasis(scheduled.text)
        except PromptSyntaxError as exc:
            raise InvalidField(name, str(exc).replace("prompt:", f"{name}:", 1)) from None


def _model_name(title: str) -> str:
    # The server resolved (and hash-checked) the title against the caller's models before compiling.
    return parse_title(title).name


def _lora_file(name: str, lora_names: Sequence[str] | None) -> str:
    if lora_names is not None:
        for candidate in lora_names:
            if candidate == name or candidate.rsplit(".", 1)[0] == name:
                return candidate
        raise InvalidField("prompt", f"prompt: LoRA {name!r} is unknown; available: {', '.join(lora_names)}")
    return name if "." in name else f"{name}.safetensors"


def compile_a1111(task: str, params: Mapping[str, Any], *, default_checkpoint: str | None,
                  input_images: Sequence[str], mask_image: str | None,
                  lora_names: Sequence[str] | None = None,
                  upscaler_names: Sequence[str] | None = None, control_images: Mapping[int, str] | None = None,
                  controlnet_names: Sequence[str] = ()) -> CompiledA1111:
    """Compile an A1111 txt2img/img2img payload to a graph; unsupported fields raise UnsupportedField.

    Args:
        control_images: ControlNet unit index → stored input image name (`alwayson_scripts.controlnet`).
    """
    # 1. Check inputs
    if task not in ("txt2img", "img2img"):
        raise InvalidField("task", f"task must be txt2img or img2img, got {task!r}")
    params = apply_infotext(task, params)
    check_fields(task, params)
    overrides = params.get("override_settings") or {}
    prompt, loras = parse_lora_tags(str(params.get("prompt") or ""))
    if params.get("disable_extra_networks"):
        loras = []  # A1111 still removes the tags from the prompt
    negative = str(params.get("negative_prompt") or "")
    steps = _int(params, "steps")
    cfg = _float(params, "cfg_scale")
    width = _int(params, "width")
    height = _int(params, "height")
    for name, value in (("width", width), ("height", height)):
        if value % 8:
            raise InvalidField(name, f"{name} must be a multiple of 8, got {value}")
    batch_size = _int(params, "batch_size")
    n_iter = _int(params, "n_iter")
    seed = _int(params, "seed")
    if seed == -1:
        seed = random.randrange(2**32)
    # A1111's API: sampler_name, else sampler_index (its /docs default "Euler")
    sampler_name = params.get("sampler_name") or params.get("sampler_index") or "Euler"
    try:
        sampler, scheduler = resolve(str(sampler_name), params.get("scheduler"))
    except UnknownSamplerName as exc:
        raise InvalidField(exc.field_name, str(exc)) from None
    variation = _variation(params, sampler)
    checkpoint = overrides.get("sd_model_checkpoint") or default_checkpoint
    if not checkpoint:
        raise InvalidField("override_settings.sd_model_checkpoint", "no checkpoint given and no default set")
    checkpoint = _model_name(str(checkpoint))
    clip_skip = _int(overrides, "CLIP_stop_at_last_layers", 1, low=1, high=12)

    hires = None
    if task == "txt2img" and params.get("enable_hr"):
        hires = plan_hires(params, width=width, height=height, steps=steps, sampler_label=str(sampler_name),
                           sampler=sampler, scheduler=scheduler, upscaler_models=upscaler_names)
    fix_steps = task == "img2img" and bool(overrides.get("img2img_fix_steps"))
    units = read_units(params, images=control_images or {}, model_names=controlnet_names,
                       fallback_image=input_images[0] if task == "img2img" and input_images else None)

    # 2. Loaders, LoRAs, text encoding
    graph: dict[str, Any] = {}
    chain = _ModelChain(clip_skip=clip_skip, sd_vae=overrides.get("sd_vae"), lora_names=lora_names)
    model, clip, vae = chain.build(graph, "", checkpoint, loras)
    schedule_steps = prompt_schedule_steps(sampler, steps)
    for name, text in (("prompt", prompt), ("negative_prompt", negative)):
        _check_prompt(name, text, schedule_steps)
    graph["prompt"] = {"class_type": "A1111Prompt", "inputs": {
        "clip": clip, "prompt": prompt, "negative_prompt": negative, "steps": schedule_steps}}
    positive, negative = apply_units(graph, units, conditioning="prompt", width=width, height=height)
    if hires is not None:
        hr_model, hr_vae = _hires_conditioning(graph, hires, chain, checkpoint=checkpoint, loras=loras,
                                               first=(model, clip, vae), schedule_steps=schedule_steps,
                                               disable_loras=bool(params.get("disable_extra_networks")))
        # units control the second pass too, at its size, unless their hr_option is "Low res only"
        hr_positive, hr_negative = apply_units(graph, units, conditioning="hr_prompt", width=hires.width,
                                               height=hires.height, prefix="hr_")

    # 3. Starting latent
    denoise = 1.0
    if task == "txt2img":
        graph["latent"] = {"class_type": "EmptyLatentImage",
                           "inputs": {"width": width, "height": height, "batch_size": batch_size}}
    else:
        denoise = _float(params, "denoising_strength")
        if fix_steps:
            if denoise <= 0:
                raise InvalidField("denoising_strength", "denoising_strength must be above 0 with img2img_fix_steps")
            variation["img2img_fix_steps"] = True
        multiplier = _float(params, "initial_noise_multiplier")
        if multiplier != 1.0:
            variation["noise_multiplier"] = multiplier
        _img2img_latent(graph, params, vae=vae, width=width, height=height, batch_size=batch_size,
                        input_images=input_images, mask_image=mask_image, seed=seed)

    # 4. One sampler chain per iteration, seeds advancing by the batch size as A1111's (image i: seed + i,
    #    or the same seed and subseed + i when a variation strength is set)
    strength = variation["subseed_strength"]
    all_seeds, all_subseeds = [], []
    for k in range(n_iter):
        chain_seed = seed + k * batch_size if strength == 0 else seed
        chain_subseed = variation["subseed"] + k * batch_size
        all_seeds.extend(chain_seed + (i if strength == 0 else 0) for i in range(batch_size))
        all_subseeds.extend(chain_subseed + i for i in range(batch_size))
        graph[f"sample{k}"] = {"class_type": "KSamplerA1111", "inputs": {
            "model": model, "steps": steps, "cfg": cfg, "sampler_name": sampler, "scheduler": scheduler,
            "positive": positive, "negative": negative, "latent_image": ["latent", 0],
            "denoise": denoise, **variation, "seed": chain_seed, "subseed": chain_subseed}}
        if "mask" in graph:
            graph[f"sample{k}"]["_meta"] = {"infotext": _inpaint_infotext(graph, params, width=width, height=height)}
        final, final_vae = [f"sample{k}", 0], vae
        if hires is not None:
            final = _hires_pass(graph, hires, k, first=final, vae=vae, hr_vae=hr_vae, sampler_inputs={
                "model": hr_model, "cfg": cfg, **variation, "seed": chain_seed, "subseed": chain_subseed,
                "positive": hr_positive, "negative": hr_negative})
            final_vae = hr_vae
        graph[f"decode{k}"] = {"class_type": "VAEDecode", "inputs": {"samples": final, "vae": final_vae}}
        images = _inpaint_overlay(graph, k, [f"decode{k}", 0])
        graph[f"save{k}"] = {"class_type": "SaveImage", "inputs": {"images": images, "filename_prefix": task}}
    effective = dict(params)
    effective.pop("alwayson_scripts", None)  # units carry base64 images; what they did is listed instead
    if units:
        effective["controlnet_units"] = [{"model": u.model, "weight": u.weight, "guidance_start": u.start,
                                          "guidance_end": u.end, "resize_mode": u.resize_mode,
                                          "control_mode": u.control_mode, "hr_option": u.hr_option}
                                         for u in units]
    effective.update(seed=seed, steps=steps, cfg_scale=cfg, width=width, height=height, batch_size=batch_size,
                     n_iter=n_iter, sampler_name=str(sampler_name), scheduler=scheduler,
                     sd_model_checkpoint=checkpoint, subseed=variation["subseed"], subseed_strength=strength)
    if task == "img2img":
        effective["denoising_strength"] = denoise
    if hires is not None:
        effective.update(hr_upscaler=hires.upscaler, hr_second_pass_steps=hires.steps, hr_resize_x=hires.width,
                         hr_resize_y=hires.height, denoising_strength=hires.denoise)
    return CompiledA1111(graph=graph, seed=seed, params=effective, all_seeds=all_seeds, all_subseeds=all_subseeds)


@dataclass(frozen=True)
class _ModelChain:
    """Checkpoint → LoRAs → CLIP skip (→ VAE override): the loaders of one pass."""

    clip_skip: int
    sd_vae: Any
    lora_names: Sequence[str] | None

    def build(self, graph: dict[str, Any], prefix: str, checkpoint: str, loras: Sequence[LoraTag]) -> tuple:
        """Add the loader nodes (ids start with `prefix`); return the MODEL, CLIP and VAE links."""
        graph[f"{prefix}ckpt"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}}
        model, clip, vae = [f"{prefix}ckpt", 0], [f"{prefix}ckpt", 1], [f"{prefix}ckpt", 2]
        for i, tag in enumerate(loras):
            node_id = f"{prefix}lora{i}"
            graph[node_id] = {"class_type": "LoraLoader", "inputs": {
                "model": model, "clip": clip, "lora_name": _lora_file(tag.name, self.lora_names),
                "strength_model": tag.unet, "strength_clip": tag.text_encoder}}
            model, clip = [node_id, 0], [node_id, 1]
        if self.clip_skip > 1:
            graph[f"{prefix}clipskip"] = {"class_type": "CLIPSetLastLayer", "inputs": {
                "clip": clip, "stop_at_clip_layer": -self.clip_skip}}
            clip = [f"{prefix}clipskip", 0]
        if self.sd_vae and str(self.sd_vae) not in ("Automatic", "None"):
            graph["vae"] = {"class_type": "VAELoader", "inputs": {"vae_name": _model_name(str(self.sd_vae))}}
            vae = ["vae", 0]
        return model, clip, vae


def _hires_conditioning(graph: dict[str, Any], hires: HiresPlan, chain: _ModelChain, *, checkpoint: str,
                        loras: Sequence[LoraTag], first: tuple, schedule_steps: int,
                        disable_loras: bool) -> tuple[list, list]:
    """The second pass's model (its checkpoint, the hires prompt's LoRAs) and prompts; returns MODEL and VAE."""
    hr_prompt, hr_loras = parse_lora_tags(hires.prompt)
    if disable_loras:
        hr_loras = []
    hr_checkpoint = _model_name(hires.checkpoint) if hires.checkpoint else checkpoint
    if hr_checkpoint == checkpoint and hr_loras == list(loras):
        model, clip, vae = first
    else:
        model, clip, vae = chain.build(graph, "hr_", hr_checkpoint, hr_loras)
    hr_steps = prompt_schedule_steps(hires.sampler, hires.steps)
    for name, text in (("hr_prompt", hr_prompt), ("hr_negative_prompt", hires.negative_prompt)):
        _check_prompt(name, text, schedule_steps + hr_steps)
    graph["hr_prompt"] = {"class_type": "A1111Prompt", "inputs": {
        "clip": clip, "prompt": hr_prompt, "negative_prompt": hires.negative_prompt, "steps": schedule_steps,
        "hires_steps": hr_steps}}
    return model, vae


def _hires_pass(graph: dict[str, Any], hires: HiresPlan, k: int, *, first: list, vae: list, hr_vae: list,
                sampler_inputs: dict[str, Any]) -> list:
    """Upscale iteration k's first pass (latent or pixels), crop as A1111 truncates, and sample it again."""
    if hires.latent:
        graph[f"hr_upscale{k}"] = {"class_type": "LatentUpscaleA1111", "inputs": {
            "samples": first, "upscale_method": hires.upscaler, "width": hires.width, "height": hires.height}}
        latent = [f"hr_upscale{k}", 0]
    else:
        graph[f"lowres{k}"] = {"class_type": "VAEDecode", "inputs": {"samples": first, "vae": vae}}
        upscale: dict[str, Any] = {"image": [f"lowres{k}", 0], "upscaler": hires.upscaler, "width": hires.width,
                                   "height": hires.height}
        if hires.upscaler not in PIXEL_UPSCALERS:  # an upscaler model of the registry
            graph["hr_upscaler"] = {"class_type": "UpscaleModelLoader", "inputs": {"model_name": hires.upscaler}}
            upscale.update(upscaler="model", upscale_model=["hr_upscaler", 0])
        graph[f"hr_upscale{k}"] = {"class_type": "ImageUpscaleA1111", "inputs": upscale}
        graph[f"hr_encode{k}"] = {"class_type": "VAEEncode", "inputs": {"pixels": [f"hr_upscale{k}", 0],
                                                                         "vae": hr_vae}}
        latent = [f"hr_encode{k}", 0]
    if hires.crop_x or hires.crop_y:
        columns, rows = hires.width // 8 - hires.crop_x, hires.height // 8 - hires.crop_y
        graph[f"hr_crop{k}"] = {"class_type": "LatentCrop", "inputs": {
            "samples": latent, "x": hires.crop_x // 2 * 8, "y": hires.crop_y // 2 * 8, "width": columns * 8,
            "height": rows * 8}}
        latent = [f"hr_crop{k}", 0]
    graph[f"hr_sample{k}"] = {"class_type": "KSamplerA1111", "inputs": {
        **sampler_inputs, "steps": hires.steps, "sampler_name": hires.sampler, "scheduler": hires.scheduler,
        "latent_image": latent, "denoise": hires.denoise,
        "img2img_fix_steps": True},
        "_meta": {"title": "Hires fix", "infotext": {k_: str(v) for k_, v in hires.infotext.items()}}}
    return [f"hr_sample{k}", 0]


def _variation(params: Mapping[str, Any], sampler: str) -> dict[str, Any]:
    """Variation seed, seed resize and A1111's sampler knobs (None means A1111's default)."""
    subseed = _int(params, "subseed")
    if subseed == -1:
        subseed = random.randrange(2**32)
    eta = _float(params, "eta", default=0.0 if sampler == "ddim" else 1.0)
    if sampler == "ddim" and eta != 0:
        raise UnsupportedField("eta", f"eta={eta} with DDIM (stochastic DDIM) is not supported; send eta 0 or null")
    return {
        "subseed": subseed, "subseed_strength": _float(params, "subseed_strength"),
        "seed_resize_from_h": max(_int(params, "seed_resize_from_h"), 0),
        "seed_resize_from_w": max(_int(params, "seed_resize_from_w"), 0),
        "eta": eta, "s_churn": _float(params, "s_churn"), "s_tmin": _float(params, "s_tmin"),
        "s_tmax": _float(params, "s_tmax"), "s_noise": _float(params, "s_noise"),
    }


def _inpaint_infotext(graph: dict[str, Any], params: Mapping[str, Any], *, width: int,
                      height: int) -> dict[str, str]:
    """The keys A1111 adds to an inpainting image's infotext (its extra_generation_params, in its order)."""
    keys: dict[str, Any] = {}
    if "mask_inverted" in graph:
        keys["Mask mode"] = "Inpaint not masked"
    if "mask_blurred" in graph:
        keys["Mask blur"] = graph["mask_blurred"]["inputs"]["blur_radius"]
    if "area" in graph:  # the saved image has the original's size; A1111's infotext names the sampled one
        keys.update({"Size": f"{width}x{height}", "Inpaint area": "Only masked",
                     "Masked area padding": graph["area"]["inputs"]["padding"]})
    if not params.get("inpainting_fill"):
        keys["Masked content"] = "fill"
    return {key: str(value) for key, value in keys.items()}


def _inpaint_overlay(graph: dict[str, Any], k: int, images: list) -> list:
    """Keep the original pixels outside the (inverted, blurred) mask, as A1111's apply_overlay: blended over the
    resized image, or ("Only masked") resized back into the cropped area of the original image."""
    if "mask" not in graph:
        return images
    mask = next([node, 0] for node in ("mask_blurred", "mask_inverted", "mask") if node in graph)
    if "area" in graph:
        graph[f"overlay{k}"] = {"class_type": "InpaintAreaPasteA1111", "inputs": {
            "destination": ["image", 0], "source": images, "mask": mask, "area": ["area", 2]}}
    else:
        if "overlay_mask" not in graph:  # A1111 doubles the whole-picture overlay's mask (np_mask × 2, clipped)
            graph["overlay_mask"] = {"class_type": "MaskComposite", "inputs": {
                "destination": mask, "source": mask, "x": 0, "y": 0, "operation": "add"}}
        graph[f"overlay{k}"] = {"class_type": "ImageCompositeMasked", "inputs": {
            "destination": ["resized", 0], "source": images, "x": 0, "y": 0, "resize_source": False,
            "mask": ["overlay_mask", 0]}}
    return [f"overlay{k}", 0]


def _img2img_latent(graph: dict[str, Any], params: Mapping[str, Any], *, vae: list, width: int, height: int,
                    batch_size: int, input_images: Sequence[str], mask_image: str | None, seed: int) -> None:
    if len(input_images) != 1:
        raise InvalidField("init_images", f"init_images must hold exactly one image, got {len(input_images)}")
    graph["image"] = {"class_type": "LoadImage", "inputs": {"image": input_images[0]}}
    resize_mode = _int(params, "resize_mode", 0, low=0, high=3)
    if resize_mode > 1:
        raise UnsupportedField("resize_mode", f"resize_mode {resize_mode} is not supported; supported: 0 (just "
                                              "resize), 1 (crop and resize)")
    has_mask = mask_image is not None or bool(params.get("mask"))
    if not has_mask or not only_masked(params):
        graph["resized"] = {"class_type": "ImageScale", "inputs": {
            "image": ["image", 0], "upscale_method": "bilinear", "width": width, "height": height,
            "crop": "center" if resize_mode == 1 else "disabled"}}
    if not has_mask:
        graph["encoded"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["resized", 0], "vae": vae}}
    else:
        if mask_image is None:
            raise InvalidField("mask", "mask was sent but not stored as an input image")
        graph["mask"] = {"class_type": "LoadImageMask", "inputs": {"image": mask_image, "channel": "red"}}
        mask = ["mask", 0]
        if params.get("inpainting_mask_invert"):
            graph["mask_inverted"] = {"class_type": "InvertMask", "inputs": {"mask": mask}}
            mask = ["mask_inverted", 0]
        blur = _int({"mask_blur": mask_blur(params)}, "mask_blur")
        if blur:
            graph["mask_blurred"] = {"class_type": "MaskBlur", "inputs": {"mask": mask, "blur_radius": blur}}
            mask = ["mask_blurred", 0]
        if "resized" in graph:
            pixels = ["resized", 0]
        else:  # "Only masked": sample the mask's area, cropped from the full-size image, at width × height
            graph["area"] = {"class_type": "InpaintAreaCropA1111", "inputs": {
                "image": ["image", 0], "mask": mask, "width": width, "height": height,
                "padding": _int(params, "inpaint_full_res_padding", 0, low=0, high=16384)}}
            pixels, mask = ["area", 0], ["area", 1]
        fill = _int(params, "inpainting_fill", 0, low=0, high=3)
        if fill != 1:  # A1111 fills the masked pixels from their surroundings before encoding (masking.fill)
            graph["prefilled"] = {"class_type": "InpaintPrefillA1111", "inputs": {"image": pixels, "mask": mask}}
            pixels = ["prefilled", 0]
        if fill in (0, 1):  # 0 "fill", 1 "original"
            graph["plain"] = {"class_type": "VAEEncode", "inputs": {"pixels": pixels, "vae": vae}}
            graph["encoded"] = {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["plain", 0],
                                                                                "mask": mask}}
        else:  # 2: latent noise, 3: latent nothing (A1111 uses the first batch's seeds for every iteration)
            graph["plain"] = {"class_type": "VAEEncode", "inputs": {"pixels": pixels, "vae": vae}}
            plain = ["plain", 0]
            if batch_size > 1:  # each image's noise from its own seed
                graph["plain_batch"] = {"class_type": "RepeatLatentBatch", "inputs": {"samples": plain,
                                                                                      "amount": batch_size}}
                plain, batch_size = ["plain_batch", 0], 1
            graph["filled"] = {"class_type": "InpaintFillA1111", "inputs": {
                "samples": plain, "mask": mask, "fill": "latent noise" if fill == 2 else "latent nothing",
                "seed": seed}}
            graph["encoded"] = {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["filled", 0],
                                                                                "mask": mask}}
    if batch_size > 1:
        graph["latent"] = {"class_type": "RepeatLatentBatch", "inputs": {"samples": ["encoded", 0],
                                                                          "amount": batch_size}}
    else:
        graph["latent"] = graph.pop("encoded")
