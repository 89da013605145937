"""Published ComfyUI workflows and per-user ComfyUI data."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class InputType(enum.StrEnum):
    """The kinds of value a workflow exposes to the artists who run it."""

    STRING = "string"  #: free text (prompts)
    INT = "int"  #: whole numbers (seed, steps, sizes)
    FLOAT = "float"  #: decimals (cfg, denoise)
    BOOLEAN = "boolean"  #: on/off
    CHOICE = "choice"  #: one of `choices` (sampler names, models)
    IMAGE = "image"  #: an uploaded input image name

    @classmethod
    def named(cls, name: str) -> InputType:
        """sdfleet's name (`int`) or ComfyUI's (`INT`, `COMBO` for a choice); ValueError for anything else."""
        return COMFY_TYPE_NAMES.get(name) or cls(name)


#: ComfyUI's input type names, as its node specs and App Mode speak them
COMFY_TYPE_NAMES: dict[str, InputType] = {
    "INT": InputType.INT, "FLOAT": InputType.FLOAT, "STRING": InputType.STRING, "BOOLEAN": InputType.BOOLEAN,
    "COMBO": InputType.CHOICE, "IMAGE": InputType.IMAGE,
}


@dataclass(frozen=True)
class WorkflowInput:
    """One input of one node that artists may set when they run the workflow."""

    name: str
    node: str
    input: str
    label: str
    type: InputType
    default: Any
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class WorkflowVersion:
    """One immutable published version of a workflow."""

    name: str
    version: int
    description: str
    graph: dict[str, Any]
    ui_graph: dict[str, Any] | None
    inputs: tuple[WorkflowInput, ...]
    allowed_roles: tuple[str, ...]
    models: tuple[dict[str, Any], ...]
    published: bool
    created_by: str
    created_at: datetime
    current: bool = False
    #: held from artists until someone other than its author (or an admin) approves it
    requires_approval: bool = False
    approved_by: str | None = None
    approved_at: datetime | None = None

    @property
    def awaiting_approval(self) -> bool:
        return self.requires_approval and self.approved_by is None


@dataclass(frozen=True)
class UserFile:
    """A file of a user's ComfyUI user data (saved workflows, templates …)."""

    path: str
    size: int
    modified_at: datetime
    content: bytes | None = field(default=None, repr=False)
