"""Streaming answers: HTTP Range downloads and Server-Sent Events framing."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator

from fastapi.responses import StreamingResponse

from sdfleet.api.errors import error_response

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class RangeNotSatisfiable(Exception):
    """The Range header cannot be served for this size."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """A single `bytes=a-b` range → inclusive (start, end); None means the whole body.

    Several ranges, other units or a malformed header are ignored (RFC 9110 lets a server send the
    whole body); a range that starts past the end raises RangeNotSatisfiable (416)."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if not first:
        suffix = int(last)
        if suffix == 0:
            raise RangeNotSatisfiable(header)
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size:
        raise RangeNotSatisfiable(header)
    if end < start:
        return None
    return start, min(end, size - 1)


def ranged_response(*, size: int, range_header: str | None, open_range: Callable[[int, int | None], Iterator[bytes]],
                    media_type: str, filename: str | None = None) -> StreamingResponse:
    """Stream a stored object, honouring a single Range (206) and advertising Accept-Ranges."""
    headers = {"Accept-Ranges": "bytes"}
    if filename:
        safe = "".join(c for c in filename if c.isalnum() or c in "._-") or "download"
        headers["Content-Disposition"] = f'attachment; filename="{safe}"'
    try:
        window = parse_range(range_header, size)
    except RangeNotSatisfiable:
        return error_response(416, "range_not_satisfiable", f"Range {range_header!r} cannot be served; size {size}",
                              headers={"Content-Range": f"bytes */{size}"})
    if window is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(open_range(0, None) if size else iter(()), media_type=media_type, headers=headers)
    start, end = window
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    return StreamingResponse(open_range(start, end), status_code=206, media_type=media_type, headers=headers)


def sse_frame(*, event: str, data: dict, event_id: int | str | None = None) -> str:
    """One Server-Sent Event."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, separators=(",", ":"), default=str))
    return "\n".join(lines) + "\n\n"
