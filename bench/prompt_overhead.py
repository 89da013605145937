"""What prompt weighting and long-prompt chunking add to a txt2img job, in both prompt dialects.

One engine, one tiny SD 1.x model, 512² and 20 steps by default; every run re-encodes its prompts.
Prompts (per dialect, ComfyUI's CLIPTextEncode and A1111Prompt):
- plain: a short prompt without weights (one chunk: what the engine did before weighting existed),
- weighted: the same words with emphasis on three of them,
- long: 3 × the words with weights and a BREAK (3 chunks for the prompt, 4 for the negative).
Each job's conditioning nodes are timed inside the run (parsing, chunking, weighting, encoding: all the
prompt machinery), so on a loaded machine the figure is not lost in the noise of two whole-job timings.
`added` = job / (job - prompt nodes), the goal is ≤ 1.05; `vs plain` compares whole jobs and is mostly
the sampler attending over more tokens (A1111 and ComfyUI pay that too)."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.models import share_with_engine, tiny_pipeline
from sdfleet.engine.events import NodeStarted
from sdfleet.engine.executor import Engine

WORDS = "a photo of a cat on a red chair, soft light, detailed fur, bokeh"
PROMPTS = {
    "plain": (WORDS, "blurry, low quality"),
    "weighted": ("a photo of a (cat:1.3) on a [red] chair, soft light, ((detailed fur)), bokeh",
                 "(blurry:1.2), low quality"),
    "long": (", ".join([WORDS.replace("cat", "(cat:1.2)")] * 3) + " BREAK a window behind",
             ", ".join(["(blurry:1.2), low quality, jpeg artifacts, deformed"] * 4) + " BREAK watermark"),
}


def graph(dialect: str, prompt: str, negative: str, *, seed: int, steps: int, size: int) -> dict:
    """txt2img with the prompts encoded in `dialect` ("comfy" or "a1111")."""
    nodes = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "bench.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": steps, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1.0, "model": ["4", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "bench", "images": ["8", 0]}},
    }
    if dialect == "comfy":
        nodes["6"] = {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["4", 1]}}
        nodes["7"] = {"class_type": "CLIPTextEncode", "inputs": {"text": negative, "clip": ["4", 1]}}
        nodes["3"]["inputs"].update(positive=["6", 0], negative=["7", 0])
    else:
        nodes["6"] = {"class_type": "A1111Prompt", "inputs": {"clip": ["4", 1], "prompt": prompt,
                                                              "negative_prompt": negative, "steps": steps}}
        nodes["3"]["inputs"].update(positive=["6", 0], negative=["6", 1])
    return nodes


def main() -> None:
    """Parse arguments, run interleaved, print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (1 on a shared, loaded machine)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: this process's CPU time (with --threads 1, the work done, whatever the load)")
    args = parser.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = tiny_pipeline("sd1", device="cpu", dtype=torch.float32)
    engine = Engine(device="cpu", dtype=torch.float32)
    files = share_with_engine(engine, pipe, family="sd1")

    def timed(g: dict) -> tuple[float, float]:
        """(whole job, the conditioning nodes 6 and 7) in seconds."""
        engine.clear_node_outputs()
        marks: list[tuple[str, float]] = []

        def on_event(event) -> None:
            if isinstance(event, NodeStarted):
                marks.append((event.node_id, clock()))

        start = clock()
        engine.run(g, files=files, on_event=on_event)
        end = clock()
        ends = [t for _, t in marks[1:]] + [end]
        prompt = sum(e - t for (node, t), e in zip(marks, ends, strict=True) if node in ("6", "7"))
        return end - start, prompt

    for dialect in ("comfy", "a1111"):
        job: dict[str, list[float]] = {name: [] for name in PROMPTS}
        encode: dict[str, list[float]] = {name: [] for name in PROMPTS}
        order = list(PROMPTS)
        for run in range(args.runs + 1):  # run 0 warms up
            for name in order if run % 2 == 0 else reversed(order):
                prompt, negative = PROMPTS[name]
                whole, part = timed(graph(dialect, prompt, negative, seed=run, steps=args.steps, size=args.size))
                if run:
                    job[name].append(whole)
                    encode[name].append(part)
        med_job = {k: statistics.median(v) for k, v in job.items()}
        med_encode = {k: statistics.median(v) for k, v in encode.items()}
        for name in PROMPTS:
            print(f"{dialect:5s} {name:8s} {args.size}px {args.steps} steps x{args.runs} ({args.clock}): "
                  f"job {med_job[name]:.3f} s  prompt nodes {med_encode[name] * 1000:.1f} ms  "
                  f"added {med_job[name] / (med_job[name] - med_encode[name]):.4f}  "
                  f"vs plain {med_job[name] / med_job['plain']:.3f}", flush=True)


if __name__ == "__main__":
    main()
