"""Schemas for published workflows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, StrictBool, StrictStr

from sdfleet.api.schemas.base import Strict
from sdfleet.domain.workflows import WorkflowVersion


class WorkflowInputSpec(Strict):
    name: StrictStr = Field(max_length=64)
    node: StrictStr = Field(max_length=64)
    input: StrictStr = Field(max_length=128)
    label: StrictStr | None = Field(default=None, max_length=200)
    type: StrictStr | None = Field(default=None, description=(
        "string, int, float, boolean, choice or image (or ComfyUI's INT, FLOAT, STRING, BOOLEAN, COMBO, IMAGE); "
        "left out: the node's input spec decides, as do min, max and choices"))
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: list[Any] | None = None


class WorkflowCreate(Strict):
    name: StrictStr = Field(min_length=1, max_length=128)
    description: StrictStr = Field(default="", max_length=4000)
    graph: dict[str, Any] = Field(description="The graph in ComfyUI's API format.")
    ui_graph: dict[str, Any] | None = Field(default=None, description="The frontend's workflow (nodes, links).")
    allowed_roles: list[StrictStr] = Field(default_factory=list, description="[] = every artist.")
    requires_approval: StrictBool = Field(default=False, description=(
        "Hold this version from artists until an admin or another workflow:all holder approves it."))
    inputs: list[WorkflowInputSpec] | None = Field(default=None, max_length=64, description=(
        "The exposed inputs; left out: App Mode's selection in ui_graph.extra.linearData (none without one)."))


class WorkflowRunCreate(Strict):
    inputs: dict[str, Any] = Field(default_factory=dict, description="Values of the exposed inputs, by name.")


class WorkflowPublic(BaseModel):
    name: str
    version: int
    current: bool
    published: bool
    description: str
    inputs: list[dict[str, Any]]
    allowed_roles: list[str]
    models: list[dict[str, Any]]
    created_by: str
    created_at: datetime
    requires_approval: bool = False
    approved_by: str | None = None
    approved_at: datetime | None = None
    graph: dict[str, Any] | None = None
    ui_graph: dict[str, Any] | None = None

    @classmethod
    def of(cls, version: WorkflowVersion, *, full: bool = False) -> WorkflowPublic:
        inputs = [{"name": i.name, "node": i.node, "input": i.input, "label": i.label, "type": i.type.value,
                   "default": i.default, "min": i.min, "max": i.max,
                   "choices": list(i.choices) if i.choices is not None else None} for i in version.inputs]
        return cls(name=version.name, version=version.version, current=version.current, published=version.published,
                   description=version.description, inputs=inputs, allowed_roles=list(version.allowed_roles),
                   models=list(version.models), created_by=version.created_by, created_at=version.created_at,
                   requires_approval=version.requires_approval, approved_by=version.approved_by,
                   approved_at=version.approved_at,
                   graph=version.graph if full else None, ui_graph=version.ui_graph if full else None)


class WorkflowList(BaseModel):
    items: list[WorkflowPublic]
