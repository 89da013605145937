"""Demo model files: tiny random SD 1.x and SDXL single-file checkpoints and a LoRA, byte-for-byte reproducible."""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass
from pathlib import Path

from sdfleet.engine.checkpoints import export_checkpoint
from sdfleet.engine.tiny import tiny_sd1_pipeline, tiny_sdxl_pipeline, write_tiny_lora
from sdfleet.modelfiles.types import ModelType

DEMO_SEED = 0


@dataclass(frozen=True)
class DemoFile:
    """One demo model file and how the registry should list it."""

    path: Path
    model_type: str  # A1111 / seed folder name: "Stable-diffusion" | "Lora"
    name: str
    architecture: str  # "sd1" | "sdxl"


def create_demo_files(out_dir: Path) -> list[DemoFile]:
    """Write `demo-sd15`, `demo-sdxl` and `demo-lora` (.safetensors) into `out_dir`; same bytes every run."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sd1 = tiny_sd1_pipeline(seed=DEMO_SEED)
    sd15_path = export_checkpoint(sd1, out_dir / "demo-sd15.safetensors", family="sd1")
    sdxl_path = export_checkpoint(
        tiny_sdxl_pipeline(seed=DEMO_SEED), out_dir / "demo-sdxl.safetensors", family="sdxl"
    )
    lora_path = write_tiny_lora(sd1, out_dir / "demo-lora.safetensors", seed=DEMO_SEED)
    return [
        DemoFile(path=sd15_path, model_type=str(ModelType.CHECKPOINT), name="demo-sd15", architecture="sd1"),
        DemoFile(path=sdxl_path, model_type=str(ModelType.CHECKPOINT), name="demo-sdxl", architecture="sdxl"),
        DemoFile(path=lora_path, model_type=str(ModelType.LORA), name="demo-lora", architecture="sd1"),
    ]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> None:
    """`python -m sdfleet.engine.demo OUT_DIR`: write the demo files and print name, type, size and sha256."""
    parser = argparse.ArgumentParser(prog="python -m sdfleet.engine.demo", description=main.__doc__)
    parser.add_argument("out_dir", type=Path, help="directory to write the demo model files into")
    args = parser.parse_args(argv)
    for demo in create_demo_files(args.out_dir):
        size = demo.path.stat().st_size
        print(
            f"{demo.name}\t{demo.model_type}\t{demo.architecture}\t{size}\t{_sha256(demo.path)}\t{demo.path}"
        )


if __name__ == "__main__":
    main()
