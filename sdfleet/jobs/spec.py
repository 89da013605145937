"""What a job runs and what it shows: `JobSpec` (one typed payload per kind), `ModelPin`, `InputImage`,
`JobSummary`, and their JSON form (the only place that reads or writes it by key)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sdfleet.modelfiles.types import ENGINE_FOLDERS, ModelType


class JobKind(StrEnum):
    """What a job does; each kind has its own spec class."""

    #: run a node graph, produce images (stored and sent as "inference", the API's name for these jobs)
    GENERATE = "inference"
    INFERENCE = "inference"  # the older name of GENERATE (an alias: the same member)
    TRAIN = "train"  #: train a LoRA on a dataset
    IMPORT = "import"  #: fetch and register a model


@dataclass(frozen=True)
class ModelPin:
    """A model a job uses, pinned by content at submission: the worker downloads it by sha256, and nothing
    downstream looks the model up again."""

    folder: str  #: the engine folder (`checkpoints`, `loras`, `embeddings` …)
    name: str  #: the name the graph or payload used
    sha256: str
    size: int

    @property
    def type(self) -> ModelType:
        """The model's type, from its engine folder."""
        return next(t for t, folder in ENGINE_FOLDERS.items() if folder == self.folder)

    @property
    def short_hash(self) -> str:
        """A1111's short hash: the first 10 hex digits of the sha256."""
        return self.sha256[:10]

    def to_json(self) -> dict[str, Any]:
        return {"folder": self.folder, "name": self.name, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelPin:
        return cls(folder=data["folder"], name=data["name"], sha256=data["sha256"], size=int(data["size"]))


@dataclass(frozen=True)
class InputImage:
    """An input image a job reads: the name its graph uses and the object key it is stored under."""

    name: str
    key: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "key": self.key}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InputImage:
        return cls(name=data["name"], key=data["key"])


@dataclass(frozen=True)
class GenerateSpec:
    """What a `generate` job runs: a node graph with its pinned models and input images."""

    graph: Mapping[str, Any]
    models: tuple[ModelPin, ...] = ()
    inputs: tuple[InputImage, ...] = ()
    #: who submitted it: `api` (native), `a1111`, `comfy`, `workflow` …
    source: str = "api"
    #: client data carried to the worker and back (ComfyUI's client_id, prompt_id, extra_pnginfo …)
    extra: Mapping[str, Any] = field(default_factory=dict)

    kind = JobKind.GENERATE

    def to_json(self) -> dict[str, Any]:
        return {"graph": dict(self.graph), "models": [m.to_json() for m in self.models],
                "inputs": [i.to_json() for i in self.inputs], "source": self.source, "extra": dict(self.extra)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GenerateSpec:
        return cls(graph=data.get("graph") or {}, models=_pins(data), inputs=_inputs(data),
                   source=data.get("source") or "api", extra=data.get("extra") or {})


@dataclass(frozen=True)
class TrainSpec:
    """What a `train` job runs: its pinned base model and the trainer's payload (`base`, `dataset` manifest,
    `config`, `lora`), whose schema the trainings service owns and checks at submission."""

    models: tuple[ModelPin, ...] = ()
    training: Mapping[str, Any] = field(default_factory=dict)
    inputs: tuple[InputImage, ...] = ()

    kind = JobKind.TRAIN

    def to_json(self) -> dict[str, Any]:
        return {"graph": {}, "models": [m.to_json() for m in self.models],
                "inputs": [i.to_json() for i in self.inputs], "training": dict(self.training)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainSpec:
        return cls(models=_pins(data), inputs=_inputs(data), training=data.get("training") or {})


#: a job's payload; its class says its kind (`spec.kind`)
JobSpec = GenerateSpec | TrainSpec

_SPECS: dict[JobKind, type[GenerateSpec] | type[TrainSpec]] = {JobKind.GENERATE: GenerateSpec,
                                                               JobKind.TRAIN: TrainSpec}


def spec_from_json(kind: JobKind, data: Mapping[str, Any]) -> JobSpec:
    """The stored JSON of a job's spec, read as its kind's payload."""
    try:
        return _SPECS[kind].from_json(data)
    except KeyError:
        raise ValueError(f"no spec is defined for job kind {kind.value!r}") from None


def _pins(data: Mapping[str, Any]) -> tuple[ModelPin, ...]:
    return tuple(ModelPin.from_json(m) for m in data.get("models") or ())


def _inputs(data: Mapping[str, Any]) -> tuple[InputImage, ...]:
    return tuple(InputImage.from_json(i) for i in data.get("inputs") or ())


@dataclass(frozen=True)
class JobSummary:
    """What lists, the gallery, notifications and the A1111/ComfyUI answers show of a job, each value once.

    Stored beside the spec as JSON (the gallery searches `prompt`, `model` and `params.negative_prompt` in SQL)."""

    source: str | None = None
    task: str | None = None
    prompt: str | None = None
    #: the checkpoint's name
    model: str | None = None
    width: int | None = None
    height: int | None = None
    #: the first image's seed, resolved (never -1)
    seed: int | None = None
    #: the seed of every image, as the compiler assigned them
    all_seeds: tuple[int, ...] = ()
    #: the A1111 fields the job was submitted with, resolved by the compiler (images left out)
    params: Mapping[str, Any] | None = None
    #: a one-off URL told when the job finishes
    webhook: str | None = None
    #: what the worker reported on completion (seconds, infotexts …)
    info: Mapping[str, Any] | None = None
    #: a training's LoRA name, dataset and length
    name: str | None = None
    dataset_id: str | None = None
    dataset_name: str | None = None
    max_train_steps: int | None = None
    epochs: int | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name in ("source", "task", "prompt", "model", "width", "height", "seed", "webhook", "name", "dataset_id",
                     "dataset_name", "max_train_steps", "epochs"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        if self.all_seeds:
            data["all_seeds"] = list(self.all_seeds)
        if self.params is not None:
            data["params"] = dict(self.params)
        if self.info is not None:
            data["info"] = dict(self.info)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobSummary:
        return cls(source=data.get("source"), task=data.get("task"), prompt=data.get("prompt"),
                   model=data.get("model"), width=data.get("width"), height=data.get("height"),
                   seed=data.get("seed"), all_seeds=tuple(data.get("all_seeds") or ()), params=data.get("params"),
                   webhook=data.get("webhook"), info=data.get("info"), name=data.get("name"),
                   dataset_id=data.get("dataset_id"), dataset_name=data.get("dataset_name"),
                   max_train_steps=data.get("max_train_steps"), epochs=data.get("epochs"))


def graph_of(spec: JobSpec) -> Mapping[str, Any]:
    """The node graph a job runs: a generate job's; other kinds run none."""
    return spec.graph if isinstance(spec, GenerateSpec) else {}


def extra_of(spec: JobSpec) -> Mapping[str, Any]:
    """The client data a generate job carries (ComfyUI's client_id, prompt_id, extra_pnginfo …)."""
    return spec.extra if isinstance(spec, GenerateSpec) else {}


def training_of(spec: JobSpec) -> Mapping[str, Any]:
    """A train job's payload (`base`, `dataset`, `config`, `lora`); other kinds carry none."""
    return spec.training if isinstance(spec, TrainSpec) else {}
