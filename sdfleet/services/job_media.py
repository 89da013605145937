"""A job's images beyond its outputs: thumbnails of the outputs (made once, kept in the object store)
and the input image and mask it was made from (for "reuse parameters")."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image

from sdfleet.domain.accounts import Principal
from sdfleet.domain.errors import NotFound
from sdfleet.jobs.records import Job
from sdfleet.jobs.spec import graph_of

THUMBNAIL_SIZE = 320  #: longest side, in pixels (a 2x gallery tile)
THUMBNAIL_TYPE = "image/webp"
INPUT_KINDS = {"LoadImage": "image", "LoadImageMask": "mask"}


@dataclass(frozen=True)
class Thumbnail:
    """A stored thumbnail: its bytes and a tag that changes only when the image does."""

    data: bytes
    etag: str
    content_type: str = THUMBNAIL_TYPE


@dataclass(frozen=True)
class JobInput:
    """An image a job read: `image` (img2img / inpaint source) or `mask`."""

    kind: str
    name: str
    key: str


def thumbnail_key(job_id: str, index: int) -> str:
    """Thumbnails sit under the job's output prefix, so deleting the job deletes them."""
    return f"outputs/{job_id}/thumbs/{index}.webp"


def make_thumbnail(png: bytes, *, size: int = THUMBNAIL_SIZE) -> bytes:
    """A WebP no larger than `size` on its longest side (never enlarged)."""
    with Image.open(io.BytesIO(png)) as image:
        image.draft("RGB", (size, size))
        picture = image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB")
        picture.thumbnail((size, size), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        picture.save(out, format="WEBP", quality=82, method=4)
        return out.getvalue()


def job_inputs(job: Job) -> list[JobInput]:
    """The input images a job's graph loads, in graph order, with their object keys."""
    keys = {item.name: item.key for item in job.spec.inputs}
    found: list[JobInput] = []
    for node in graph_of(job.spec).values():
        if not isinstance(node, Mapping):
            continue
        kind = INPUT_KINDS.get(node.get("class_type"))
        name = (node.get("inputs") or {}).get("image")
        if kind and isinstance(name, str) and name in keys and all(i.kind != kind for i in found):
            found.append(JobInput(kind=kind, name=name, key=keys[name]))
    return found


class JobMedia:
    """Thumbnails and input images of the jobs a principal may see (`find_job` decides who sees what)."""

    def __init__(self, *, objects: Any, find_job: Callable[[Principal, str], Job]) -> None:
        self._objects = objects
        self._find_job = find_job

    def thumbnail(self, principal: Principal, job_id: str, index: int) -> Thumbnail:
        """The thumbnail of output `index`, made from the output the first time it is asked for."""
        job = self._find_job(principal, job_id)
        output = next((o for o in job.outputs if o.index == index), None)
        if output is None:
            raise NotFound(f"inference {job_id!r} has no output {index}")
        key = thumbnail_key(job.id, index)
        try:
            data = self._objects.read_bytes(key)
        except KeyError:
            data = make_thumbnail(self._objects.read_bytes(output.key))
            self._objects.put(key, data, content_type=THUMBNAIL_TYPE)
        return Thumbnail(data=data, etag=f'"{job.id}-{index}-{output.size}"')

    def inputs(self, principal: Principal, job_id: str) -> list[JobInput]:
        """The input image and mask of a job (none for txt2img)."""
        return job_inputs(self._find_job(principal, job_id))

    def open_input(self, principal: Principal, job_id: str, kind: str) -> Iterator[bytes]:
        """The bytes of a job's input `image` or `mask`."""
        found = next((i for i in self.inputs(principal, job_id) if i.kind == kind), None)
        if found is None:
            raise NotFound(f"inference {job_id!r} has no input {kind!r}", details={"kind": kind})
        try:
            return self._objects.open_range(found.key)
        except KeyError:
            raise NotFound(f"the input {kind!r} of inference {job_id!r} is no longer stored") from None
