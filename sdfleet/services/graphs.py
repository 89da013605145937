"""The engine's graph knowledge the server needs: validation, A1111 compilation, model references.

Uses the engine's torch-free spec snapshot (`sdfleet/engine/spec_snapshot.py`), so the API process
never imports torch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sdfleet.domain.errors import InvalidInput
from sdfleet.modelfiles.types import ENGINE_FOLDERS, ModelType

FOLDER_TYPES: dict[str, ModelType] = {folder: model_type for model_type, folder in ENGINE_FOLDERS.items()}


class GraphInvalid(InvalidInput):
    """A graph failed validation; `node_errors` maps node ids to ComfyUI-style error lists."""

    code = "invalid_graph"

    def __init__(self, message: str, *, node_errors: dict[str, list[dict[str, Any]]]) -> None:
        super().__init__(message, field="graph", details={"node_errors": node_errors})
        self.node_errors = node_errors


@dataclass(frozen=True)
class ModelReference:
    """A model named by a graph input (`ckpt_name`, `lora_name` …)."""

    folder: str
    name: str
    node_id: str
    input_name: str


@dataclass(frozen=True)
class CompiledRequest:
    """An A1111 payload turned into a graph."""

    graph: dict[str, Any]
    seed: int
    params: dict[str, Any]
    #: every image's seed, as the compiler assigned them
    all_seeds: list[int]


class GraphTools:
    """Validation and compilation through the engine's registry."""

    def __init__(self) -> None:
        self._registry = None

    @property
    def registry(self):
        if self._registry is None:
            from sdfleet.engine.spec_snapshot import spec_registry

            self._registry = spec_registry()
        return self._registry

    def validate(self, graph: Any, *, model_names: Mapping[str, Sequence[str]] | None) -> None:
        """Raise GraphInvalid naming each bad node."""
        from sdfleet.engine.graph import GraphValidationError, validate_graph

        try:
            validate_graph(graph, self.registry, model_names=model_names)
        except GraphValidationError as exc:
            node_errors = {
                node_id: [{"type": e.type, "message": e.message, "input_name": e.input_name} for e in errs]
                for node_id, errs in (exc.node_errors or {}).items()
            }
            first = next(iter(node_errors.items()), None)
            message = str(exc) if first is None else f"{exc}: node {first[0]}: {first[1][0]['message']}"
            raise GraphInvalid(message, node_errors=node_errors) from None

    def input_spec(self, class_type: Any, input_name: str):
        """The declared spec (type, min, max, choices, model folder) of one input of a node class, or None."""
        definition = self.registry.get(class_type) if isinstance(class_type, str) else None
        if definition is None:
            return None
        return next((spec for spec in definition.spec.inputs if spec.name == input_name), None)

    def model_references(self, graph: Mapping[str, Any]) -> list[ModelReference]:
        """Every model-file input of the graph's nodes, by engine folder."""
        refs = []
        for node_id, node in graph.items():
            if not isinstance(node, Mapping):
                continue
            definition = self.registry.get(node.get("class_type"))
            if definition is None:
                continue
            for spec in definition.spec.inputs:
                folder = spec.model_folder
                value = (node.get("inputs") or {}).get(spec.name)
                if folder and folder in FOLDER_TYPES and isinstance(value, str):
                    refs.append(ModelReference(folder=folder, name=value, node_id=str(node_id), input_name=spec.name))
        return refs

    def embedding_references(self, graph: Mapping[str, Any], names: Sequence[str]) -> list[ModelReference]:
        """The embeddings (of `names`, the caller's) that the graph's prompts may use, as model references."""
        from sdfleet.engine.embedding_names import embeddings_named_in

        refs = []
        for node_id, node in graph.items():
            if not isinstance(node, Mapping):
                continue
            inputs = node.get("inputs") or {}
            if node.get("class_type") == "A1111Prompt":
                dialect, fields = "a1111", ("prompt", "negative_prompt")
            elif node.get("class_type") == "CLIPTextEncode":
                dialect, fields = "comfy", ("text",)
            else:
                continue
            texts = [inputs[f] for f in fields if isinstance(inputs.get(f), str)]
            for name in embeddings_named_in(texts, names, dialect=dialect):
                refs.append(ModelReference(folder="embeddings", name=name, node_id=str(node_id),
                                           input_name=fields[0]))
        return refs

    def controlnet_images(self, params: Mapping[str, Any]) -> list[tuple[int, str, Any]]:
        """(unit index, field, base64) of the enabled A1111 ControlNet units' images; bad units are InvalidInput."""
        from sdfleet.engine.a1111_controlnet import unit_images
        from sdfleet.engine.a1111_fields import InvalidField, UnsupportedField

        try:
            return unit_images(params)
        except UnsupportedField as exc:
            raise InvalidInput(str(exc), field=f"params.{exc.name}", details={"unsupported": [exc.name]}) from None
        except InvalidField as exc:
            raise InvalidInput(str(exc), field=f"params.{exc.name}") from None

    def compile_a1111(self, task: str, params: Mapping[str, Any], *, default_checkpoint: str | None,
                      input_images: Sequence[str], mask_image: str | None,
                      lora_names: Sequence[str], upscaler_names: Sequence[str] = (),
                      control_images: Mapping[int, str] | None = None,
                      controlnet_names: Sequence[str] = ()) -> CompiledRequest:
        """Compile an A1111 payload; bad or unsupported fields become InvalidInput naming them."""
        from sdfleet.engine.a1111 import InvalidField, UnsupportedField, compile_a1111

        try:
            compiled = compile_a1111(task, params, default_checkpoint=default_checkpoint, input_images=input_images,
                                     mask_image=mask_image, lora_names=lora_names,
                                     upscaler_names=list(upscaler_names), control_images=control_images,
                                     controlnet_names=list(controlnet_names))
        except UnsupportedField as exc:
            raise InvalidInput(str(exc), field=f"params.{exc.name}", details={"unsupported": [exc.name]}) from None
        except InvalidField as exc:
            raise InvalidInput(str(exc), field=f"params.{exc.name}") from None
        return CompiledRequest(graph=compiled.graph, seed=compiled.seed, params=compiled.params,
                               all_seeds=compiled.all_seeds)

    def object_info(self, model_names: Mapping[str, Sequence[str]]) -> dict[str, Any]:
        """ComfyUI's /object_info for these model lists."""
        return self.registry.object_info(model_names)
