"""ComfyUI's server-side value nodes (PrimitiveInt/Float/String/StringMultiline/Boolean): a widget whose value
feeds other nodes' inputs. The frontend-only PrimitiveNode, Reroute and notes never reach the server: the
frontend writes their values into the nodes they feed when it exports a prompt."""

from __future__ import annotations

import sys
from typing import Any

from sdfleet.engine.node_registry import InputSpec, NodeDefinition, NodeSpec, OutputSpec
from sdfleet.engine.nodes.context import NodeContext


def pass_value(ctx: NodeContext, *, value: Any) -> tuple[Any, ...]:
    """The widget's value, unchanged."""
    return (value,)


def _node(class_type: str, display_name: str, value: InputSpec, output: str) -> NodeDefinition:
    return NodeDefinition(NodeSpec(class_type, (value,), (OutputSpec(output, output),), "utils/primitive",
                                   display_name), pass_value)


NODES = [
    _node("PrimitiveString", "String", InputSpec("value", "STRING"), "STRING"),
    _node("PrimitiveStringMultiline", "String (Multiline)", InputSpec("value", "STRING", multiline=True), "STRING"),
    _node("PrimitiveInt", "Int", InputSpec("value", "INT", default=0, min=-sys.maxsize, max=sys.maxsize, step=1,
                                           seed=True), "INT"),
    _node("PrimitiveFloat", "Float", InputSpec("value", "FLOAT", default=0.0, min=-sys.maxsize, max=sys.maxsize,
                                               step=0.1), "FLOAT"),
    _node("PrimitiveBoolean", "Boolean", InputSpec("value", "BOOLEAN", default=False), "BOOLEAN"),
]
