"""Engine txt2img vs diffusers' pipeline called directly: same modules, settings and seeds, runs interleaved.

Prints the ratio of median wall times (goal ≤ 1.02) and peak memory. On the CPU it uses the tests' tiny
models; `--real` builds SD 1.5 / SDXL architectures with random weights (for a GPU).
Both sides end in PNG bytes (diffusers' images are PNG-encoded with the same settings), since a
service must produce PNGs either way.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.models import real_architecture_pipeline, share_with_engine, tiny_pipeline
from sdfleet.engine.executor import Engine


def graph(*, seed: int, steps: int, size: int, batch: int) -> dict:
    """The default ComfyUI txt2img workflow."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "bench.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": batch}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a photo of a cat", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": steps, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
            "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "bench", "images": ["8", 0]}},
    }


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=4)
    return buffer.getvalue()


def measure(*, family: str, real: bool, device: str, dtype: torch.dtype, size: int, steps: int, batch: int,
            runs: int, warmup: int = 1) -> dict:
    """Interleave `runs` diffusers and engine generations; return medians, ratio and peak memory."""
    build = real_architecture_pipeline if real else tiny_pipeline
    pipe = build(family, device=device, dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    engine = Engine(device=device, dtype=dtype)
    files = share_with_engine(engine, pipe, family=family)

    def run_diffusers(seed: int) -> None:
        images = pipe("a photo of a cat", negative_prompt="blurry", num_inference_steps=steps, guidance_scale=7.0,
                      height=size, width=size, num_images_per_prompt=batch,
                      generator=torch.Generator("cpu").manual_seed(seed)).images
        [_png(i) for i in images]

    def run_engine(seed: int) -> None:
        engine.clear_node_outputs()  # full work every time: no cached prompt encodings
        engine.run(graph(seed=seed, steps=steps, size=size, batch=batch), files=files)

    times: dict[str, list[float]] = {"diffusers": [], "engine": []}
    peaks: dict[str, int] = {"diffusers": 0, "engine": 0}
    for i in range(warmup + runs):
        for name, fn in (("diffusers", run_diffusers), ("engine", run_engine)) if i % 2 == 0 else \
                (("engine", run_engine), ("diffusers", run_diffusers)):
            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            _sync(device)
            start = time.perf_counter()
            fn(i)
            _sync(device)
            elapsed = time.perf_counter() - start
            if i >= warmup:
                times[name].append(elapsed)
            if device.startswith("cuda"):
                peaks[name] = max(peaks[name], torch.cuda.max_memory_allocated())
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"family": family, "size": size, "batch": batch, "steps": steps, "runs": runs,
            "diffusers_s": med["diffusers"], "engine_s": med["engine"], "ratio": med["engine"] / med["diffusers"],
            "peak_diffusers": peaks["diffusers"], "peak_engine": peaks["engine"]}


def report(result: dict, device: str) -> None:
    """One line per configuration."""
    mem = "" if not device.startswith("cuda") else (
        f"  peak MiB diffusers {result['peak_diffusers'] / 2**20:.0f} engine {result['peak_engine'] / 2**20:.0f}"
        f" (ratio {result['peak_engine'] / max(result['peak_diffusers'], 1):.3f})")
    print(f"{result['family']:5s} {result['size']}px batch {result['batch']} {result['steps']} steps "
          f"x{result['runs']}: diffusers {result['diffusers_s'] * 1000:.1f} ms  engine "
          f"{result['engine_s'] * 1000:.1f} ms  ratio {result['ratio']:.3f}{mem}", flush=True)


def main() -> None:
    """Parse arguments, run, print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--family", choices=["sd1", "sdxl"], default="sd1")
    parser.add_argument("--real", action="store_true", help="real SD architecture (random weights)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default=None)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[
        args.dtype or ("fp16" if args.device.startswith("cuda") else "fp32")]
    report(measure(family=args.family, real=args.real, device=args.device, dtype=dtype, size=args.size,
                   steps=args.steps, batch=args.batch, runs=args.runs), args.device)


if __name__ == "__main__":
    main()
