"""/api/v1/objects/{key}: downloads by signed URL (local and in-memory stores; S3 presigns its own).

No login: the signature and its expiry are the credential. Notification mails link images this way."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from sdfleet.api.deps import ServicesDep
from sdfleet.domain.errors import Forbidden, NotFound
from sdfleet.objects.base import InvalidObjectKey, ObjectNotFound
from sdfleet.objects.signing import content_disposition

router = APIRouter(tags=["objects"])


@router.get("/objects/{key:path}", response_class=StreamingResponse,
            responses={200: {"content": {"application/octet-stream": {}}}})
def download_signed(key: str, services: ServicesDep,
                    expires: Annotated[int, Query(ge=0, le=2**40, description="Unix time the link expires.")],
                    signature: Annotated[str, Query(max_length=128)],
                    filename: Annotated[str | None, Query(max_length=255)] = None) -> StreamingResponse:
    """An object by a signed, expiring link."""
    verify = getattr(services.objects, "verify_download", None)
    try:
        valid = verify is not None and verify(key, expires=expires, signature=signature, filename=filename)
    except InvalidObjectKey:
        valid = False
    if not valid:
        raise Forbidden("this download link is not valid or has expired")
    try:
        info = services.objects.head(key)
        chunks = services.objects.open_range(key)
    except ObjectNotFound:
        raise NotFound("this object no longer exists") from None
    headers = {"Content-Length": str(info.size), "Cache-Control": "private, max-age=3600"}
    if filename:
        headers["Content-Disposition"] = content_disposition(filename)
    return StreamingResponse(chunks, media_type=info.content_type or "application/octet-stream", headers=headers)
