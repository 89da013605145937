"""Parsing, validation and execution order of graphs in ComfyUI's API format."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sdfleet.engine.node_registry import NodeRegistry, check_value

MAX_NODES = 1000  # ComfyUI's largest real workflows have a few hundred nodes


@dataclass(frozen=True)
class NodeError:
    """One problem with one node; `input_name` names the input concerned, if any."""

    type: str
    message: str
    input_name: str | None = None


class GraphValidationError(Exception):
    """A graph failed validation; `node_errors` lists the problems per node id."""

    def __init__(self, message: str, node_errors: dict[str, list[NodeError]] | None = None) -> None:
        self.node_errors: dict[str, list[NodeError]] = node_errors or {}
        details = "; ".join(
            f"node {node_id}: {err.message}" for node_id, errs in self.node_errors.items() for err in errs
        )
        super().__init__(f"{message}: {details}" if details else message)
        self.message = message


@dataclass(frozen=True)
class Link:
    """An input fed by output `output_index` of node `node_id`."""

    node_id: str
    output_index: int


@dataclass
class GraphNode:
    """A parsed node: its class and its inputs (literals or Links)."""

    node_id: str
    class_type: str
    inputs: dict[str, Any]
    title: str | None = None


@dataclass
class Graph:
    """A validated graph: its nodes, the output nodes, and the order to execute what feeds them."""

    nodes: dict[str, GraphNode]
    outputs: list[str]
    order: list[str] = field(default_factory=list)


def parse_graph(raw: Any) -> dict[str, GraphNode]:
    """Turn an API-format dict into GraphNodes; raise GraphValidationError on a malformed structure."""
    if not isinstance(raw, Mapping) or not raw:
        raise GraphValidationError("graph must be a non-empty object of node id -> node")
    if len(raw) > MAX_NODES:
        raise GraphValidationError(f"graph has {len(raw)} nodes; at most {MAX_NODES} are accepted")
    nodes: dict[str, GraphNode] = {}
    errors: dict[str, list[NodeError]] = {}
    for node_id, body in raw.items():
        node_id = str(node_id)
        if not isinstance(body, Mapping) or not isinstance(body.get("class_type"), str):
            errors[node_id] = [NodeError("invalid_prompt", "node must be an object with a string class_type")]
            continue
        inputs = body.get("inputs", {})
        if not isinstance(inputs, Mapping):
            errors[node_id] = [NodeError("invalid_prompt", "inputs must be an object")]
            continue
        parsed: dict[str, Any] = {}
        for name, value in inputs.items():
            parsed[name] = _parse_value(value)
        meta = body.get("_meta")
        title = meta.get("title") if isinstance(meta, Mapping) else None
        nodes[node_id] = GraphNode(node_id, body["class_type"], parsed, title)
    if errors:
        raise GraphValidationError("graph is malformed", errors)
    return nodes


def _parse_value(value: Any) -> Any:
    if (isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int))
            and not isinstance(value[0], bool) and isinstance(value[1], int) and not isinstance(value[1], bool)):
        return Link(str(value[0]), value[1])
    return value


def validate_graph(raw: Any, registry: NodeRegistry, *,
                   model_names: Mapping[str, Sequence[str]] | None = None) -> Graph:
    """Validate a graph and return it with its execution order; raise GraphValidationError naming each bad node."""
    nodes = parse_graph(raw)
    errors: dict[str, list[NodeError]] = {}
    for node in nodes.values():
        if node.class_type not in registry:
            errors.setdefault(node.node_id, []).append(
                NodeError("missing_node_type", f"unknown node class {node.class_type!r}"))
    outputs = [
        n.node_id for n in nodes.values()
        if n.class_type in registry and registry.get(n.class_type).spec.output_node  # type: ignore[union-attr]
    ]
    if not outputs and not errors:
        raise GraphValidationError("graph has no output node (SaveImage or PreviewImage)")
    needed = _ancestors(outputs, nodes)
    for node_id in sorted(needed, key=_id_key):
        node = nodes[node_id]
        if node.class_type in registry:
            node_errors = _check_node(node, nodes, registry, model_names)
            if node_errors:
                errors.setdefault(node_id, []).extend(node_errors)
    if errors:
        raise GraphValidationError("graph failed validation", errors)
    cycle = _find_cycle(outputs, nodes)
    if cycle:
        closer = cycle[-2]
        path = " -> ".join(cycle)
        raise GraphValidationError("graph has a cycle", {
            closer: [NodeError("dependency_cycle", f"node {closer} closes a cycle: {path}")]})
    return Graph(nodes=nodes, outputs=sorted(outputs, key=_id_key), order=_topological_order(needed, nodes))


def _check_node(node: GraphNode, nodes: Mapping[str, GraphNode], registry: NodeRegistry,
                model_names: Mapping[str, Sequence[str]] | None) -> list[NodeError]:
    spec = registry.get(node.class_type).spec  # type: ignore[union-attr]
    errors: list[NodeError] = []
    for name in node.inputs:
        if spec.input(name) is None and name not in spec.ignored_inputs:
            expected = ", ".join(i.name for i in spec.inputs)
            errors.append(NodeError("unknown_input", f"unknown input {name!r} (expected: {expected})", name))
    for inp in spec.inputs:
        if inp.name not in node.inputs:
            if not inp.optional:
                errors.append(NodeError("required_input_missing", f"required input {inp.name!r} is missing",
                                        inp.name))
            continue
        value = node.inputs[inp.name]
        if isinstance(value, Link):
            errors.extend(_check_link(inp.name, inp.type, value, nodes, registry))
        elif not inp.is_widget:
            errors.append(NodeError("invalid_input_type",
                                    f"{inp.name} must be a link [node_id, output_index] to a {inp.type}, "
                                    f"got {value!r}", inp.name))
        else:
            problem = check_value(inp, value, model_names=model_names)
            if problem:
                errors.append(NodeError(problem[0], problem[1], inp.name))
    definition = registry.get(node.class_type)
    if definition.check is not None and not errors:  # type: ignore[union-attr]
        literals = {k: v for k, v in node.inputs.items() if not isinstance(v, Link)}
        for input_name, kind, message in definition.check(literals):  # type: ignore[union-attr]
            errors.append(NodeError(kind, message, input_name))
    return errors


def _check_link(name: str, expected: str, link: Link, nodes: Mapping[str, GraphNode],
                registry: NodeRegistry) -> list[NodeError]:
    source = nodes.get(link.node_id)
    if source is None:
        return [NodeError("bad_linked_input", f"{name} links to missing node {link.node_id}", name)]
    definition = registry.get(source.class_type)
    if definition is None:
        return [NodeError("bad_linked_input", f"{name} links to node {link.node_id} of unknown class", name)]
    outputs = definition.spec.outputs
    if not 0 <= link.output_index < len(outputs):
        return [NodeError("bad_linked_input",
                          f"{name} links to output {link.output_index} of node {link.node_id} "
                          f"({source.class_type}), which has {len(outputs)} outputs", name)]
    got = outputs[link.output_index].type
    if got != expected and not (expected == "COMBO" and got == "STRING") and "*" not in (got, expected):
        return [NodeError("return_type_mismatch",
                          f"{name} expects {expected} but node {link.node_id} output {link.output_index} "
                          f"is {got}", name)]
    return []


def _links(node: GraphNode) -> list[Link]:
    return [v for v in node.inputs.values() if isinstance(v, Link)]


def _ancestors(outputs: Sequence[str], nodes: Mapping[str, GraphNode]) -> set[str]:
    seen: set[str] = set()
    stack = list(outputs)
    while stack:
        node_id = stack.pop()
        if node_id in seen or node_id not in nodes:
            continue
        seen.add(node_id)
        stack.extend(link.node_id for link in _links(nodes[node_id]))
    return seen


def _find_cycle(outputs: Sequence[str], nodes: Mapping[str, GraphNode]) -> list[str] | None:
    """Depth-first search from the outputs; the path ends with the node that closes the cycle, then its target.

    Iterative (an explicit stack), so a long chain cannot exhaust Python's recursion limit."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for output in sorted(outputs, key=_id_key):
        if output in state:
            continue
        path: list[str] = [output]
        state[output] = 1
        pending = [iter(_sorted_targets(nodes[output]))]
        while pending:
            target = next(pending[-1], None)
            if target is None:
                state[path.pop()] = 2
                pending.pop()
            elif state.get(target) == 1:
                return path[path.index(target):] + [target]
            elif target not in state:
                state[target] = 1
                path.append(target)
                pending.append(iter(_sorted_targets(nodes[target])))
    return None


def _sorted_targets(node: GraphNode) -> list[str]:
    return [link.node_id for link in sorted(_links(node), key=lambda lk: _id_key(lk.node_id))]


def _topological_order(needed: set[str], nodes: Mapping[str, GraphNode]) -> list[str]:
    remaining = {n: {lk.node_id for lk in _links(nodes[n])} for n in needed}
    order: list[str] = []
    while remaining:
        ready = sorted((n for n, deps in remaining.items() if not deps), key=_id_key)
        if not ready:  # pragma: no cover - cycles are rejected before
            raise GraphValidationError("graph has a cycle")
        for node_id in ready:
            order.append(node_id)
            del remaining[node_id]
        for deps in remaining.values():
            deps.difference_update(ready)
    return order


def _id_key(node_id: str) -> tuple[int, int | str]:
    return (0, int(node_id)) if node_id.isascii() and node_id.isdigit() else (1, node_id)
