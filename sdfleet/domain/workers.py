"""Workers as the services and the API see them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class WorkerRecord:
    """A registered worker and what it last reported."""

    id: str
    name: str
    endpoint: str
    status: str
    device: str | None
    info: dict
    loaded_models: list
    created_at: datetime
    last_seen_at: datetime | None
    revoked_at: datetime | None
