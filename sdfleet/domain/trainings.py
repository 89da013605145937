"""LoRA trainings: which base models train at which resolutions, and where a training's files live."""

from __future__ import annotations

import re

from sdfleet.domain.errors import InvalidInput

#: base-model families a LoRA trains on → the training resolutions (px) that suit them
FAMILY_RESOLUTIONS: dict[str, tuple[int, int]] = {"sd1": (64, 1024), "sd2": (64, 1536), "sdxl": (256, 2048)}
#: what a worker may store as a training's artifact: the LoRA, the evaluation grid, samples
_ARTIFACT = re.compile(r"lora\.safetensors|grid\.png|samples/\d{8}-\d{1,3}\.png")
MAX_SAMPLE_PROMPTS = 8
MAX_PROMPT_LENGTH = 1000


def training_prefix(job_id: str) -> str:
    """Object-store prefix of everything a training stores."""
    return f"trainings/{job_id}/"


def checkpoint_key(job_id: str, step: int) -> str:
    """A resumable training checkpoint (LoRA weights, optimizer, scheduler, RNG, data position) at `step`."""
    return f"{training_prefix(job_id)}checkpoints/{step:08d}.pt"


def artifact_key(job_id: str, name: str) -> str:
    """Where an artifact of a training lives; refuses names a worker may not write."""
    if not isinstance(name, str) or not _ARTIFACT.fullmatch(name):
        raise InvalidInput(f"artifact must be lora.safetensors, grid.png or samples/NNNNNNNN-N.png, got {name!r}",
                           field="name")
    return f"{training_prefix(job_id)}{name}"


def check_family(family: str, *, base_name: str, resolution: int) -> None:
    """The base model must be of a trainable family, and the resolution one that family trains at."""
    if family not in FAMILY_RESOLUTIONS:
        raise InvalidInput(f"base_model {base_name!r} is an {family} checkpoint; a LoRA trains on "
                           f"{', '.join(FAMILY_RESOLUTIONS)} checkpoints", field="base_model",
                           details={"family": family})
    low, high = FAMILY_RESOLUTIONS[family]
    if not low <= resolution <= high:
        raise InvalidInput(f"base_model {base_name!r} is an {family} checkpoint, which trains at {low}-{high} px; "
                           f"the training resolution is {resolution}", field="base_model",
                           details={"family": family, "resolution": resolution})
