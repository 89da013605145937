"""Events the engine reports while running a graph, and its run result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


class Cancelled(Exception):
    """Raised by Engine.run when should_cancel() returned True between two steps."""

    def __init__(self, node_id: str | None) -> None:
        super().__init__(f"run cancelled (at node {node_id})" if node_id else "run cancelled")
        self.node_id = node_id


@dataclass(frozen=True)
class OutputImage:
    """One PNG produced by a SaveImage (kind "output") or PreviewImage (kind "temp") node."""

    node_id: str
    png: bytes
    width: int
    height: int
    filename_prefix: str
    kind: Literal["output", "temp"]
    #: The seed this image was made with (A1111 batches: seed + index), when a sampler made it.
    seed: int | None = None


@dataclass(frozen=True)
class NodeCached:
    """These nodes' outputs came from the cache and will not run."""

    node_ids: list[str]


@dataclass(frozen=True)
class NodeStarted:
    """A node began executing."""

    node_id: str


@dataclass(frozen=True)
class Progress:
    """One sampler step finished (value of max), with an optional preview PNG."""

    node_id: str
    value: int
    max: int
    preview_png: bytes | None = None


@dataclass(frozen=True)
class NodeOutput:
    """An output node produced images."""

    node_id: str
    images: list[OutputImage]


EngineEvent = NodeCached | NodeStarted | Progress | NodeOutput


@dataclass
class RunResult:
    """Everything a run produced: images in output-node order, and which nodes ran or were cached."""

    images: list[OutputImage] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
