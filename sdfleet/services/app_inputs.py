"""Exposed inputs the way ComfyUI's App Mode names them (`extra.linearData`), and what a node's spec says of them."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from sdfleet.domain.errors import InvalidInput
from sdfleet.domain.workflows import COMFY_TYPE_NAMES, InputType

#: App Mode's widget id: `{graph id}:{node id}:{widget name}`, the last two URI-encoded (frontend 1.58)
WIDGET_ID = re.compile(r"^(?P<graph>[^:]+):(?P<node>[^:]+):(?P<name>[^:]+)$")
LINEAR_FIELD = "ui_graph.extra.linearData.inputs"
MAX_LINEAR_INPUTS = 64


@dataclass(frozen=True)
class InputHint:
    """What a node's declared input says an exposed input is: its kind, bounds and choices."""

    type: InputType | None
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None


def hint_of(spec: Any, model_names: Mapping[str, Sequence[str]]) -> InputHint | None:
    """The hint of an engine InputSpec; a model combo's choices are the publisher's models of that folder."""
    if spec is None:
        return None
    if spec.image_upload:
        return InputHint(type=InputType.IMAGE)
    kind = COMFY_TYPE_NAMES.get(spec.type)
    if kind is InputType.CHOICE:
        choices = spec.choices if spec.choices is not None else model_names.get(spec.model_folder or "")
        return InputHint(type=kind, choices=tuple(choices) if choices else None)
    if kind in (InputType.INT, InputType.FLOAT):
        return InputHint(type=kind, min=spec.min, max=spec.max)
    return InputHint(type=kind)


def linear_data(ui_graph: Any) -> Mapping[str, Any] | None:
    """The App Mode selection of a frontend workflow, when it has one."""
    extra = ui_graph.get("extra") if isinstance(ui_graph, Mapping) else None
    found = extra.get("linearData") if isinstance(extra, Mapping) else None
    return found if isinstance(found, Mapping) else None


def _identifier(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", text)[:56] or "input"
    return name if re.match(r"[A-Za-z_]", name) else f"_{name}"


def _target(entry: Any, *, root_id: Any, where: str) -> tuple[str, str]:
    """(node id, widget name) of one `linearData.inputs` entry: `[widget id, name, config?]` or the legacy
    `[node id, widget name]`."""
    if not isinstance(entry, list) or not 2 <= len(entry) <= 3 or not isinstance(entry[1], str):
        raise InvalidInput(f"{where} must be [widget id, widget name] as App Mode saves it", field=where)
    ident, widget = entry[0], entry[1]
    if isinstance(ident, int) and not isinstance(ident, bool):
        return str(ident), widget
    if not isinstance(ident, str) or not ident:
        raise InvalidInput(f"{where}[0] must be a widget id or a node id, got {ident!r}", field=where)
    match = WIDGET_ID.match(ident)
    if match is None:
        return ident, widget
    if isinstance(root_id, str) and match["graph"] != root_id:
        raise InvalidInput(f"{where} selects a widget inside a subgraph; publish exposes widgets of top-level "
                           "nodes (promote the widget to the subgraph node)", field=where)
    return unquote(match["node"]), unquote(match["name"])


def inputs_from_linear_data(ui_graph: Mapping[str, Any], graph: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Exposed-input declarations (no type: it comes from the node's spec) for App Mode's selected widgets."""
    entries = (linear_data(ui_graph) or {}).get("inputs", [])
    if not isinstance(entries, list) or len(entries) > MAX_LINEAR_INPUTS:
        raise InvalidInput(f"{LINEAR_FIELD} must be a list of at most {MAX_LINEAR_INPUTS} entries",
                           field=LINEAR_FIELD)
    targets = [_target(entry, root_id=ui_graph.get("id"), where=f"{LINEAR_FIELD}[{i}]")
               for i, entry in enumerate(entries)]
    widget_counts = Counter(widget for _, widget in targets)
    declared, used = [], set()
    for i, (node_id, widget) in enumerate(targets):
        node = graph.get(node_id)
        if not isinstance(node, Mapping):
            raise InvalidInput(f"{LINEAR_FIELD}[{i}]: node {node_id} is not in the graph (a frontend-only node "
                               "such as a primitive or a note cannot be an input)", field=f"{LINEAR_FIELD}[{i}]")
        if widget not in (node.get("inputs") or {}):
            raise InvalidInput(f"{LINEAR_FIELD}[{i}]: {widget!r} is not an input of node {node_id} "
                               f"({node.get('class_type')}); it has {', '.join(sorted(node.get('inputs') or {}))}",
                               field=f"{LINEAR_FIELD}[{i}]")
        name = _identifier(widget if widget_counts[widget] == 1 else f"{widget}_{node_id}")
        while name in used:
            name = f"{name}_"
        used.add(name)
        meta = node.get("_meta")
        title = meta.get("title") if isinstance(meta, Mapping) else None
        label = f"{title}: {widget}" if isinstance(title, str) and title else widget
        declared.append({"name": name, "node": node_id, "input": widget, "label": label[:200]})
    return declared
