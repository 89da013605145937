"""The narrow interface through which the engine receives model files and input images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

MODEL_FOLDERS = ("checkpoints", "loras", "vae", "controlnet", "embeddings", "upscale_models", "diffusion_models",
                 "text_encoders")


@dataclass(frozen=True)
class ModelFile:
    """A model file on local disk and the sha256 of its content."""

    path: Path
    sha256: str


class ModelFiles(Protocol):
    """Resolves model and input-image names to local files; implemented by the worker."""

    def model_path(self, folder: str, name: str) -> ModelFile:
        """Return the local file for `name` in `folder` (one of MODEL_FOLDERS); raise KeyError if unknown."""
        ...

    def input_image(self, name: str) -> Path:
        """Return the local path of an input image named by LoadImage / LoadImageMask."""
        ...

    def model_names(self, folder: str) -> list[str]:
        """The names `model_path` resolves in `folder` (A1111 prompts name embeddings without a prefix)."""
        ...


class DictModelFiles:
    """ModelFiles backed by in-memory dictionaries (tests, demo, benchmarks)."""

    def __init__(
        self,
        models: dict[str, dict[str, ModelFile]] | None = None,
        images: dict[str, Path] | None = None,
    ) -> None:
        self.models: dict[str, dict[str, ModelFile]] = models or {}
        self.images: dict[str, Path] = images or {}

    def add_model(self, folder: str, name: str, file: ModelFile) -> None:
        """Register a model file under `folder`/`name`."""
        if folder not in MODEL_FOLDERS:
            raise ValueError(f"folder must be one of {MODEL_FOLDERS}, got {folder!r}")
        self.models.setdefault(folder, {})[name] = file

    def model_path(self, folder: str, name: str) -> ModelFile:
        """Return the registered file or raise KeyError naming folder and name."""
        try:
            return self.models[folder][name]
        except KeyError:
            raise KeyError(f"no model {name!r} in folder {folder!r}") from None

    def input_image(self, name: str) -> Path:
        """Return the registered image path or raise KeyError."""
        try:
            return self.images[name]
        except KeyError:
            raise KeyError(f"no input image {name!r}") from None

    def model_names(self, folder: str) -> list[str]:
        """The registered names in `folder`."""
        return sorted(self.models.get(folder, {}))

    def names(self) -> dict[str, list[str]]:
        """Model names per folder, as Engine.validate and object_info take them."""
        return {folder: sorted(entries) for folder, entries in self.models.items()}
