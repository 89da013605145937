"""Images made with the LoRA being trained: samples during a run, and the evaluation grid (prompts × weights)."""

from __future__ import annotations

import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline
from diffusers.loaders.lora_base import set_adapters_for_text_encoder
from PIL import Image, ImageDraw

from sdfleet.engine.training.network import ADAPTER

GRID_WEIGHTS = (0.0, 0.5, 1.0)


def pipeline_of(base):
    """A diffusers pipeline around a base model's modules (a trainer's: the adapter in place), Euler sampling."""
    scheduler = EulerDiscreteScheduler.from_config(base.scheduler_config, timestep_spacing="linspace")
    if base.is_xl:
        return StableDiffusionXLPipeline(vae=base.vae, text_encoder=base.text_encoder,
                                         text_encoder_2=base.text_encoder_2, tokenizer=base.tokenizer,
                                         tokenizer_2=base.tokenizer_2, unet=base.unet, scheduler=scheduler)
    return StableDiffusionPipeline(vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer,
                                   unet=base.unet, scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def _set_weight(trainer, weight: float) -> None:
    for name in trainer.trained:
        module = getattr(trainer.base, name)
        if name == "unet":
            module.set_adapters([ADAPTER], weights=[weight])
        else:
            set_adapters_for_text_encoder([ADAPTER], module, [weight])


@torch.no_grad()
def sample_images(trainer, prompts: tuple[str, ...] | list[str], *, weight: float | None = None) -> list[Image.Image]:
    """One image per prompt, seeds `samples.seed + i`, at the LoRA weight given (default: as trained)."""
    settings = trainer.config.samples
    width = settings.width or trainer.config.resolution
    height = settings.height or trainer.config.resolution
    pipe = pipeline_of(trainer.base)
    pipe.set_progress_bar_config(disable=True)
    for name in trainer.trained:
        getattr(trainer.base, name).eval()
    if weight is not None:
        _set_weight(trainer, weight)
    try:
        images = []
        with torch.random.fork_rng(devices=[]):  # sampling never moves the training's random state
            for i, prompt in enumerate(prompts):
                generator = torch.Generator("cpu").manual_seed(settings.seed + i)
                images += pipe(prompt, num_inference_steps=settings.steps, guidance_scale=settings.cfg_scale,
                               width=width, height=height, generator=generator).images
        return images
    finally:
        if weight is not None:
            _set_weight(trainer, 1.0)


def evaluation_grid(trainer, prompts: tuple[str, ...] | list[str],
                    weights: tuple[float, ...] = GRID_WEIGHTS) -> Image.Image:
    """Rows = prompts, columns = LoRA weights (0 is the base model), labelled."""
    rows = [[] for _ in prompts]
    for weight in weights:
        for row, image in zip(rows, sample_images(trainer, prompts, weight=weight), strict=True):
            row.append(image)
    width, height = rows[0][0].size
    label = 14
    grid = Image.new("RGB", (width * len(weights), (height + label) * len(prompts)), "white")
    draw = ImageDraw.Draw(grid)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            top = r * (height + label)
            draw.text((c * width + 2, top + 1), f"w={weights[c]:g} {prompts[r][:40]}", fill="black")
            grid.paste(image, (c * width, top + label))
    return grid
