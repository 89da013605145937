"""Workers as the services and the API see them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

#: `sdfleet worker` exit statuses a launcher (or an operator's service manager) can tell apart
EXIT_TOKEN_REFUSED = 3  #: the server refused the worker token (revoked or deleted): restarting cannot help
EXIT_ORPHANED = 4  #: the server that launched this worker (`--parent-pid`) is gone


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
