"""Node-output cache: a second run of an identical graph, and of the same graph with a new seed, vs the first."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.engine_vs_diffusers import graph
from bench.models import share_with_engine, tiny_pipeline
from sdfleet.engine.executor import Engine


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    """Print first / identical / new-seed run times and their ratios to the first run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--family", choices=["sd1", "sdxl"], default="sd1")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    pipe = tiny_pipeline(args.family, device="cpu", dtype=torch.float32)
    engine = Engine()
    files = share_with_engine(engine, pipe, family=args.family)
    first, same, reseeded = [], [], []
    for r in range(args.repeats):
        engine.clear_node_outputs()
        g = graph(seed=r, steps=args.steps, size=args.size, batch=1)
        first.append(_timed(lambda g=g: engine.run(g, files=files)))
        same.append(_timed(lambda g=g: engine.run(g, files=files)))
        g2 = graph(seed=r + 1000, steps=args.steps, size=args.size, batch=1)
        reseeded.append(_timed(lambda g2=g2: engine.run(g2, files=files)))
    f, s, n = (statistics.median(x) for x in (first, same, reseeded))
    print(f"{args.family} {args.size}px {args.steps} steps: first {f * 1000:.1f} ms, identical graph "
          f"{s * 1000:.2f} ms (ratio {s / f:.4f}), new seed {n * 1000:.1f} ms (ratio {n / f:.3f})")


if __name__ == "__main__":
    main()
