"""The Engine: validates a graph, runs the nodes that feed its outputs, caches node outputs and models."""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import torch

from sdfleet.engine.events import Cancelled, EngineEvent, NodeCached, NodeOutput, NodeStarted, Progress, RunResult
from sdfleet.engine.files import ModelFiles
from sdfleet.engine.graph import Graph, GraphValidationError, Link, NodeError, validate_graph
from sdfleet.engine.image_admission import DEFAULT_MAX_IMAGE_PIXELS
from sdfleet.engine.infotext import image_seed, infotext_for
from sdfleet.engine.model_cache import ModelCache, default_budget
from sdfleet.engine.model_loader import ModelLoader
from sdfleet.engine.node_registry import NodeRegistry, check_value
from sdfleet.engine.nodes import (
    composite,
    conditioning,
    conditioning_edit,
    controlnet_hint,
    custom_sampling,
    hires,
    image,
    image_transform,
    inpaint_a1111,
    inpaint_area,
    latent,
    latent_transform,
    loaders,
    mask,
    patches,
    primitives,
    sampling,
    upscale_models,
)
from sdfleet.engine.nodes.context import NodeContext
from sdfleet.engine.preview import latent_preview_png

OUTPUT_CACHE_ENTRIES = 64


@lru_cache(maxsize=1)
def node_registry() -> NodeRegistry:
    """The registry of every node class the engine runs."""
    return NodeRegistry([*loaders.NODES, *conditioning.NODES, *latent.NODES, *sampling.NODES, *image.NODES,
                         *mask.NODES, *custom_sampling.NODES, *patches.NODES, *composite.NODES,
                         *image_transform.NODES, *latent_transform.NODES, *primitives.NODES,
                         *conditioning_edit.NODES, *hires.NODES, *upscale_models.NODES, *inpaint_a1111.NODES,
                         *inpaint_area.NODES, *controlnet_hint.NODES])


def object_info(model_names: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """ComfyUI's /object_info for every node, with model choices from `model_names` (folder → names)."""
    return node_registry().object_info(model_names)


class NodeExecutionError(Exception):
    """A node raised while running; names the node and its class."""

    def __init__(self, node_id: str, class_type: str, error: Exception) -> None:
        super().__init__(f"node {node_id} ({class_type}) failed: {error}")
        self.node_id = node_id
        self.class_type = class_type
        self.error = error


def _default_dtype(device: str) -> torch.dtype:
    if device.startswith("cuda"):
        return torch.float16
    return torch.float32


class _PreviewClock:
    """Allows one preview per `interval` seconds (0: every step); encoding one costs milliseconds per step."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last = float("-inf")

    def due(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.interval:
            return False
        self.last = now
        return True


class Engine:
    """Runs graphs in ComfyUI's API format on one device, with model and node-output caches."""

    def __init__(self, *, device: str = "cpu", memory_budget_bytes: int | None = None,
                 dtype: torch.dtype | None = None, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> None:
        self.device = torch.device(device)
        self.max_image_pixels = max_image_pixels
        self.dtype = dtype or _default_dtype(device)
        self.registry = node_registry()
        self.models = ModelCache(memory_budget_bytes or default_budget(device))
        self.loader = ModelLoader(self.models, device=device, dtype=self.dtype)
        self._outputs: OrderedDict[str, tuple[Any, ...]] = OrderedDict()

    def validate(self, graph: dict, *, model_names: Mapping[str, Sequence[str]] | None = None) -> Graph:
        """Check a graph without running it; raise GraphValidationError with per-node errors."""
        return validate_graph(graph, self.registry, model_names=model_names)

    def clear_node_outputs(self) -> None:
        """Forget cached node outputs (models stay loaded)."""
        self._outputs.clear()

    def clear_caches(self) -> None:
        """Forget cached node outputs and loaded models."""
        self._outputs.clear()
        self.models.remove(self.models.keys())

    def run(self, graph: dict, *, files: ModelFiles, on_event: Callable[[EngineEvent], None] | None = None,
            should_cancel: Callable[[], bool] | None = None, preview: bool = False, preview_interval: float = 0.0,
            extra_pnginfo: Mapping[str, Any] | None = None) -> RunResult:
        """Run the nodes that feed the graph's output nodes and return the images they produced."""
        # 1. Validate and compute every needed node's cache signature
        parsed = self.validate(graph)
        preview_clock = _PreviewClock(preview_interval)
        emit = on_event or (lambda event: None)
        signatures = self._signatures(parsed, files)

        # 2. Find what must run: uncached outputs and their uncached ancestors
        to_run: set[str] = set()
        stack = [n for n in parsed.outputs if signatures[n] not in self._outputs]
        while stack:
            node_id = stack.pop()
            if node_id in to_run:
                continue
            to_run.add(node_id)
            for value in parsed.nodes[node_id].inputs.values():
                if isinstance(value, Link) and signatures[value.node_id] not in self._outputs:
                    stack.append(value.node_id)
        cached = [n for n in parsed.order if n not in to_run]
        result = RunResult(cached=cached)
        if cached:
            emit(NodeCached(cached))

        # 3. Execute in order
        values: dict[str, tuple[Any, ...]] = {}
        try:
            with torch.inference_mode():
                for node_id in parsed.order:
                    if node_id in to_run:
                        values[node_id] = self._execute(parsed, node_id, values, signatures, files=files,
                                                        emit=emit, should_cancel=should_cancel,
                                                        preview=preview, preview_clock=preview_clock,
                                                        graph=graph, extra_pnginfo=extra_pnginfo or {})
                        result.executed.append(node_id)
                    else:
                        values[node_id] = self._outputs[signatures[node_id]]
                        self._outputs.move_to_end(signatures[node_id])
        finally:
            self.models.unpin_all()

        # 4. Collect output images in output-node order
        for node_id in parsed.outputs:
            images = values[node_id][0]
            result.images.extend(images)
            if node_id not in to_run:
                emit(NodeOutput(node_id, list(images)))
        return result

    def _execute(self, parsed: Graph, node_id: str, values: Mapping[str, tuple[Any, ...]],
                 signatures: Mapping[str, str], *, files: ModelFiles, emit: Callable[[EngineEvent], None],
                 should_cancel: Callable[[], bool] | None, preview: bool, preview_clock: _PreviewClock,
                 graph: dict,
                 extra_pnginfo: Mapping[str, Any]) -> tuple[Any, ...]:
        node = parsed.nodes[node_id]
        definition = self.registry.get(node.class_type)
        assert definition is not None
        kwargs = self._inputs(node_id, node.inputs, definition.spec, values)
        emit(NodeStarted(node_id))

        def check_cancel() -> None:
            if should_cancel is not None and should_cancel():
                raise Cancelled(node_id)

        def report(value: int, maximum: int, latents: torch.Tensor | None) -> None:
            due = preview and latents is not None and preview_clock.due()
            png = latent_preview_png(latents) if due else None
            emit(Progress(node_id, value, maximum, png))

        def infotext(save_id: str, index: int) -> str | None:
            source = values.get(_first_link(parsed.nodes[save_id].inputs, "images"))
            shape = source[0].shape if source else None
            if shape is None:
                return None
            return infotext_for(graph, save_id, files=files, width=int(shape[2]), height=int(shape[1]),
                                index=index)

        ctx = NodeContext(node_id=node_id, files=files, models=self.loader, device=self.device, dtype=self.dtype,
                          report_progress=report, check_cancel=check_cancel, graph=graph,
                          extra_pnginfo=extra_pnginfo, infotext=infotext, max_image_pixels=self.max_image_pixels,
                          image_seed=lambda save_id, index: image_seed(graph, save_id, index))
        check_cancel()
        try:
            outputs = definition.execute(ctx, **kwargs)
        except (Cancelled, GraphValidationError):
            raise
        except Exception as exc:
            raise NodeExecutionError(node_id, node.class_type, exc) from exc
        self._store(signatures[node_id], outputs)
        if definition.spec.output_node:
            emit(NodeOutput(node_id, list(outputs[0])))
        return outputs

    def _inputs(self, node_id: str, inputs: Mapping[str, Any], spec: Any,
                values: Mapping[str, tuple[Any, ...]]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        for inp in spec.inputs:
            if inp.name not in inputs:
                continue
            value = inputs[inp.name]
            if isinstance(value, Link):
                value = values[value.node_id][value.output_index]
                if inp.is_widget:
                    problem = check_value(inp, value)
                    if problem:
                        raise GraphValidationError("linked value out of range",
                                                   {node_id: [NodeError(problem[0], problem[1], inp.name)]})
            kwargs[inp.name] = value
        return kwargs

    def _signatures(self, parsed: Graph, files: ModelFiles) -> dict[str, str]:
        """Cache key per node: its class, literal inputs, outside fingerprint and its ancestors' keys."""
        signatures: dict[str, str] = {}
        for node_id in parsed.order:
            node = parsed.nodes[node_id]
            definition = self.registry.get(node.class_type)
            assert definition is not None
            parts: dict[str, Any] = {"class": node.class_type, "device": str(self.device), "dtype": str(self.dtype)}
            for name, value in sorted(node.inputs.items()):
                if isinstance(value, Link):
                    parts[name] = ["link", signatures[value.node_id], value.output_index]
                else:
                    parts[name] = value
            if definition.fingerprint is not None:
                try:
                    parts["_fingerprint"] = definition.fingerprint(files, node.inputs)
                except (KeyError, FileNotFoundError) as exc:
                    raise GraphValidationError("a named file is not available", {
                        node_id: [NodeError("value_not_in_list", str(exc).strip("'\""))]}) from exc
            if definition.spec.output_node:
                parts["_graph"] = _graph_digest(parsed)
            blob = json.dumps(parts, sort_keys=True, default=str).encode()
            signatures[node_id] = hashlib.sha256(blob).hexdigest()
        return signatures

    def _store(self, signature: str, outputs: tuple[Any, ...]) -> None:
        self._outputs[signature] = outputs
        self._outputs.move_to_end(signature)
        while len(self._outputs) > OUTPUT_CACHE_ENTRIES:
            self._outputs.popitem(last=False)


def _first_link(inputs: Mapping[str, Any], name: str) -> str:
    value = inputs.get(name)
    return value.node_id if isinstance(value, Link) else ""


def _graph_digest(parsed: Graph) -> str:
    """Output PNGs embed the whole graph, so an output node's cache entry depends on all of it."""
    blob = json.dumps({k: [n.class_type, {a: [b.node_id, b.output_index] if isinstance(b, Link) else b
                                           for a, b in n.inputs.items()}] for k, n in parsed.nodes.items()},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
