"""LoRA training: sdfleet's trainer vs a plain diffusers + peft loop shaped like diffusers'
`examples/text_to_image/train_text_to_image_lora.py`, same model, images, network and settings.

Each side runs in its own process (so peak RSS is its own), alternating, `--runs` times; the best steps/s of
each is compared (goal: ratio sdfleet / baseline ≥ 1.0). On the CPU it uses the tests' tiny SD 1.x model;
`--real` builds the SD 1.5 architecture with random weights (for a GPU: `bench/gpu.sh`).

The baseline does per step what the diffusers script does: transform the batch's images, encode them with
the VAE (`latent_dist.sample()`), encode the captions, add noise, predict, MSE, step. sdfleet's trainer
encodes each image and caption once (kohya's latent and text-encoder caching) and draws batches from
aspect-ratio buckets.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _images(folder: Path, *, count: int, size: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _base(args):
    from bench.models import real_architecture_pipeline, tiny_pipeline
    from sdfleet.engine.training.base_model import BaseModel

    dtype = DTYPES[args.precision] if args.device.startswith("cuda") else torch.float32
    pipe = (real_architecture_pipeline if args.real else tiny_pipeline)("sd1", device=args.device, dtype=dtype)
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        module.requires_grad_(False)
    return BaseModel("sd1", pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer, None, None,
                     dict(pipe.scheduler.config))


def _config(args):
    from sdfleet.engine.training.config import TrainingConfig

    return TrainingConfig(network_rank=args.rank, network_alpha=float(args.rank), max_train_steps=args.steps,
                          resolution=args.size, train_batch_size=args.batch, random_flip=True, unet_lr=1e-4,
                          mixed_precision=args.precision, save_every_n_steps=10**6, seed=0)


def run_sdfleet(args, paths: list[Path]) -> float:
    """Seconds for `args.steps` optimizer steps of sdfleet's trainer (caching included)."""
    from sdfleet.engine.training.data import ImageSet, TrainingItem
    from sdfleet.engine.training.trainer import Trainer

    config = _config(args)
    items = [TrainingItem(p, f"a photo of sks thing {i % 3}") for i, p in enumerate(paths)]
    images = ImageSet(items, resolution=args.size, enable_bucket=True, bucket_range=config.bucket_range)
    trainer = Trainer(_base(args), images, config, device=args.device)
    _sync(args.device)
    started = time.perf_counter()
    trainer.run()
    _sync(args.device)
    return time.perf_counter() - started


def run_baseline(args, paths: list[Path]) -> float:
    """Seconds for `args.steps` steps of the diffusers-script loop on the same model and network."""
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_scheduler
    from peft import LoraConfig

    from sdfleet.engine.training.network import UNET_TARGETS

    base = _base(args)
    device, precision = args.device, args.precision if args.device.startswith("cuda") else "no"
    torch.manual_seed(0)
    base.unet.add_adapter(LoraConfig(r=args.rank, lora_alpha=args.rank, init_lora_weights="gaussian",
                                     target_modules=list(UNET_TARGETS)))
    params = [p for p in base.unet.parameters() if p.requires_grad]
    for p in params:
        p.data = p.data.float()
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-2)
    lr_scheduler = get_scheduler("constant", optimizer=optimizer, num_warmup_steps=0, num_training_steps=args.steps)
    noise_scheduler = DDPMScheduler.from_config(base.scheduler_config)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    captions = [f"a photo of sks thing {i % 3}" for i in range(len(paths))]

    def transform(path: Path) -> torch.Tensor:  # Resize, CenterCrop, RandomHorizontalFlip, ToTensor, Normalize
        image = Image.open(path).convert("RGB").resize((args.size, args.size), Image.Resampling.BILINEAR)
        if torch.rand(1).item() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)

    _sync(device)
    started = time.perf_counter()
    order = torch.randperm(len(paths)).tolist()
    for step in range(args.steps):
        batch = [order[(step * args.batch + j) % len(order)] for j in range(args.batch)]
        pixels = torch.stack([transform(paths[i]) for i in batch]).to(device, dtype=base.vae.dtype)
        with torch.autocast(device.split(":")[0], dtype=DTYPES[precision], enabled=precision != "no"):
            latents = base.vae.encode(pixels).latent_dist.sample() * base.vae.config.scaling_factor
            noise = torch.randn_like(latents)
            timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(batch),), device=device)
            noisy = noise_scheduler.add_noise(latents, noise, timesteps)
            ids = base.tokenizer([captions[i] for i in batch], padding="max_length", truncation=True,
                                 max_length=base.tokenizer.model_max_length, return_tensors="pt").input_ids
            hidden = base.text_encoder(ids.to(device), return_dict=False)[0]
            prediction = base.unet(noisy, timesteps, hidden, return_dict=False)[0]
            loss = F.mse_loss(prediction.float(), noise.float(), reduction="mean")
        (scaler.scale(loss) if scaler else loss).backward()
        if scaler:
            scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad()
    _sync(device)
    return time.perf_counter() - started


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def child(args) -> None:
    """One side, one run: print {seconds, steps_per_s, peak_rss_mb, cuda_peak_mb} as JSON."""
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        paths = _images(Path(folder), count=args.images, size=args.size)
        steps = args.steps
        seconds = (run_sdfleet if args.mode == "sdfleet" else run_baseline)(args, paths)
    cuda = torch.cuda.max_memory_allocated() / 2**20 if args.device.startswith("cuda") else 0.0
    print(json.dumps({"seconds": seconds, "steps_per_s": steps / seconds,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "cuda_peak_mb": cuda}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--real", action="store_true", help="SD 1.5 architecture, random weights")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--baseline-steps", type=int, default=None, help="steps of the baseline (default: --steps)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--precision", default="no", choices=list(DTYPES))
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads in each run (0: torch's default)")
    parser.add_argument("--mode", choices=["both", "sdfleet", "baseline"], default="both")
    args = parser.parse_args()
    if args.mode != "both":
        child(args)
        return
    results: dict[str, list[dict]] = {"baseline": [], "sdfleet": []}
    for _ in range(args.runs):
        for mode in ("baseline", "sdfleet"):
            argv = [a for a in sys.argv[1:] if not a.startswith("--mode")]
            if mode == "baseline" and args.baseline_steps:
                argv += ["--steps", str(args.baseline_steps)]
            out = subprocess.run([sys.executable, __file__, *argv, "--mode", mode], check=True, capture_output=True,
                                 text=True).stdout
            results[mode].append(json.loads(out.strip().splitlines()[-1]))
    best = {mode: max(runs, key=lambda r: r["steps_per_s"]) for mode, runs in results.items()}
    ratio = best["sdfleet"]["steps_per_s"] / best["baseline"]["steps_per_s"]
    print(f"LoRA training, {'SD 1.5 architecture' if args.real else 'tiny SD 1.x'}, {args.size}², batch {args.batch}, "
          f"rank {args.rank}, {args.images} images, {args.device} {args.precision}, best of {args.runs}")
    for mode in ("baseline", "sdfleet"):
        r = best[mode]
        print(f"  {mode:9s} {r['steps_per_s']:8.2f} steps/s  ({r['seconds']:.2f} s)  peak RSS {r['peak_rss_mb']:.0f} MB"
              + (f"  CUDA peak {r['cuda_peak_mb']:.0f} MB" if r["cuda_peak_mb"] else ""))
    print(f"  ratio sdfleet / baseline: {ratio:.2f} (goal ≥ 1.0)")
    if args.real and args.steps >= 1000:
        print(f"  {args.steps} steps in {best['sdfleet']['seconds']:.1f} s (seed's A10G figure: 387 s per 1000; "
              "goal on an H100: ≤ 130 s)")


if __name__ == "__main__":
    main()
