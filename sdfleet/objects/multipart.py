"""S3's multipart rules, shared by the stores that implement multipart themselves."""

from __future__ import annotations

import hashlib

from sdfleet.objects.base import InvalidMultipart, PartInfo


def check_completion(parts: list[PartInfo], *, stored: dict[int, PartInfo], min_part_size: int) -> None:
    """Refuse a completion that S3 would refuse, naming the offending part."""
    check_part_order(parts)
    for index, part in enumerate(parts):
        actual = stored.get(part.part_number)
        if actual is None:
            raise InvalidMultipart(f"part {part.part_number} was never uploaded")
        if actual.etag != part.etag.strip('"'):
            raise InvalidMultipart(
                f"part {part.part_number} etag must be {actual.etag!r} (as uploaded), got {part.etag!r}"
            )
        if index < len(parts) - 1 and actual.size < min_part_size:
            raise InvalidMultipart(
                f"part {part.part_number} must be at least {min_part_size} bytes (all parts but the last), "
                f"got {actual.size}"
            )


def multipart_etag(parts: list[PartInfo]) -> str:
    """Return S3's etag of a multipart object: md5 of the parts' binary md5s, dash, part count."""
    digest = hashlib.md5(b"".join(bytes.fromhex(p.etag.strip('"')) for p in parts)).hexdigest()
    return f"{digest}-{len(parts)}"


def check_part_order(parts: list[PartInfo]) -> None:
    """Refuse an empty part list or part numbers that are not strictly ascending (S3's InvalidPartOrder)."""
    if not parts:
        raise InvalidMultipart("parts must list at least one part")
    previous = 0
    for part in parts:
        if part.part_number <= previous:
            raise InvalidMultipart(
                f"parts must be in ascending part_number order without repeats, got {part.part_number} "
                f"after {previous}"
            )
        previous = part.part_number
