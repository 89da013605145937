"""Typed node declarations, the registry of node classes, and ComfyUI's /object_info built from it."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
INT_MAX = 0xFFFFFFFFFFFFFFFF


@dataclass(frozen=True)
class InputSpec:
    """One declared input: a widget (INT/FLOAT/STRING/BOOLEAN/COMBO) or a link type such as MODEL."""

    name: str
    type: str
    default: Any = None
    min: float | None = None
    max: float | None = None
    step: float | None = None
    round: float | bool | None = None  # False: the frontend must not round (sigmas)
    choices: tuple[str, ...] | None = None
    model_folder: str | None = None
    optional: bool = False
    multiline: bool = False
    seed: bool = False
    image_upload: bool = False
    tooltip: str | None = None

    @property
    def is_widget(self) -> bool:
        """True for literal-valued inputs, False for inputs that must be links."""
        return self.type in WIDGET_TYPES


@dataclass(frozen=True)
class OutputSpec:
    """One declared output of a node."""

    type: str
    name: str


@dataclass(frozen=True)
class NodeSpec:
    """A node class: its inputs, outputs, category and whether it is an output node."""

    class_type: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[OutputSpec, ...]
    category: str
    display_name: str = ""
    description: str = ""
    output_node: bool = False
    ignored_inputs: frozenset[str] = field(default_factory=frozenset)

    def input(self, name: str) -> InputSpec | None:
        """Return the input named `name`, or None."""
        for spec in self.inputs:
            if spec.name == name:
                return spec
        return None


@dataclass(frozen=True)
class NodeDefinition:
    """A node class: its spec and the function that executes it (returns one value per output)."""

    spec: NodeSpec
    execute: Callable[..., tuple[Any, ...]]
    #: Extra cache-key material from outside the graph (a model file's sha256, an image file's mtime).
    fingerprint: Callable[..., Any] | None = None
    #: Checks across literal inputs; returns (input name, error type, message) for each problem.
    check: Callable[[Mapping[str, Any]], list[tuple[str, str, str]]] | None = None


def int_input(name: str, *, default: int, min: int = 0, max: int = INT_MAX, step: int = 1,
              seed: bool = False) -> InputSpec:
    """An INT widget input."""
    return InputSpec(name, "INT", default=default, min=min, max=max, step=step, seed=seed)


def float_input(name: str, *, default: float, min: float, max: float, step: float = 0.01,
                round: float | bool | None = None) -> InputSpec:
    """A FLOAT widget input."""
    return InputSpec(name, "FLOAT", default=default, min=min, max=max, step=step, round=round)


def combo_input(name: str, choices: Sequence[str], *, default: str | None = None) -> InputSpec:
    """A COMBO widget input with fixed choices."""
    return InputSpec(name, "COMBO", default=default if default is not None else choices[0], choices=tuple(choices))


def model_input(name: str, folder: str) -> InputSpec:
    """A COMBO widget input whose choices are the model names of a folder."""
    return InputSpec(name, "COMBO", model_folder=folder)


def link_input(name: str, type_: str, *, optional: bool = False) -> InputSpec:
    """An input that must be linked to another node's output of type `type_`."""
    return InputSpec(name, type_, optional=optional)


def check_value(spec: InputSpec, value: Any, *,
                model_names: Mapping[str, Sequence[str]] | None = None) -> tuple[str, str] | None:
    """Check a literal against its spec; return (error type, message) or None when valid."""
    kind = spec.type
    if kind == "INT":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                return "invalid_input_type", f"{spec.name} must be an integer, got {value!r}"
    elif kind == "FLOAT":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return "invalid_input_type", f"{spec.name} must be a finite number, got {value!r}"
    elif kind == "STRING":
        if not isinstance(value, str):
            return "invalid_input_type", f"{spec.name} must be a string, got {value!r}"
    elif kind == "BOOLEAN":
        if not isinstance(value, bool):
            return "invalid_input_type", f"{spec.name} must be true or false, got {value!r}"
    elif kind == "COMBO":
        if not isinstance(value, str):
            return "invalid_input_type", f"{spec.name} must be a string, got {value!r}"
        allowed = _choices(spec, model_names)
        if allowed is not None and value not in allowed:
            shown = ", ".join(allowed[:20]) + (" …" if len(allowed) > 20 else "")
            return "value_not_in_list", f"{spec.name}: {value!r} is not one of [{shown}]"
        return None
    if kind in ("INT", "FLOAT"):
        if spec.min is not None and value < spec.min:
            return "value_smaller_than_min", f"{spec.name} must be >= {spec.min}, got {value}"
        if spec.max is not None and value > spec.max:
            return "value_bigger_than_max", f"{spec.name} must be <= {spec.max}, got {value}"
    return None


def _choices(spec: InputSpec, model_names: Mapping[str, Sequence[str]] | None) -> list[str] | None:
    if spec.choices is not None:
        return list(spec.choices)
    if spec.model_folder is not None and model_names is not None:
        return list(model_names.get(spec.model_folder, ()))
    return None


class NodeRegistry:
    """All node classes by class_type."""

    def __init__(self, definitions: Sequence[NodeDefinition]) -> None:
        self._definitions: dict[str, NodeDefinition] = {}
        for definition in definitions:
            class_type = definition.spec.class_type
            if class_type in self._definitions:
                raise ValueError(f"node class {class_type!r} is registered twice")
            self._definitions[class_type] = definition

    def __contains__(self, class_type: object) -> bool:
        return class_type in self._definitions

    def get(self, class_type: str) -> NodeDefinition | None:
        """Return the definition of `class_type`, or None."""
        return self._definitions.get(class_type)

    def class_types(self) -> list[str]:
        """All registered class names."""
        return list(self._definitions)

    def object_info(self, model_names: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
        """ComfyUI's GET /object_info answer for every registered node."""
        return {name: _node_info(d.spec, model_names or {}) for name, d in self._definitions.items()}


def _input_info(spec: InputSpec, model_names: Mapping[str, Sequence[str]]) -> list[Any]:
    if not spec.is_widget:
        return [spec.type]
    options: dict[str, Any] = {}
    if spec.type == "COMBO":
        choices = _choices(spec, model_names) or []
        if spec.image_upload:
            options["image_upload"] = True
        if spec.default is not None:
            options["default"] = spec.default
        return [choices, options] if options else [choices]
    if spec.default is not None:
        options["default"] = spec.default
    for key in ("min", "max", "step", "round"):
        value = getattr(spec, key)
        if value is not None:
            options[key] = value
    if spec.multiline:
        options["multiline"] = True
    if spec.seed:
        options["control_after_generate"] = True
    if spec.tooltip:
        options["tooltip"] = spec.tooltip
    return [spec.type, options]


def _node_info(spec: NodeSpec, model_names: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    required = {i.name: _input_info(i, model_names) for i in spec.inputs if not i.optional}
    optional = {i.name: _input_info(i, model_names) for i in spec.inputs if i.optional}
    inputs: dict[str, Any] = {"required": required}
    order: dict[str, list[str]] = {"required": list(required)}
    if optional:
        inputs["optional"] = optional
        order["optional"] = list(optional)
    return {
        "input": inputs,
        "input_order": order,
        "output": [o.type for o in spec.outputs],
        "output_is_list": [False for _ in spec.outputs],
        "output_name": [o.name for o in spec.outputs],
        "name": spec.class_type,
        "display_name": spec.display_name or spec.class_type,
        "description": spec.description,
        "python_module": "nodes",
        "category": spec.category,
        "output_node": spec.output_node,
    }
