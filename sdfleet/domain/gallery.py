"""The gallery: searchable images (jobs and their outputs), stars, boards, and what a search asks for."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sdfleet.jobs.records import Job, JobStatus


@dataclass(frozen=True)
class GalleryQuery:
    """A gallery search. `team`: everyone's jobs (gallery:all), else the caller's; `owner` narrows by username."""

    team: bool = False
    owner: str | None = None
    text: str | None = None  #: words the prompt contains (each, case-insensitive)
    model: str | None = None
    status: JobStatus | None = None
    since: datetime | None = None
    until: datetime | None = None
    starred: bool = False  #: only jobs the caller starred
    board_id: str | None = None  #: only jobs on this board of the caller's


@dataclass(frozen=True)
class GalleryItem:
    """A job as the gallery shows it: its owner, and the caller's star and boards."""

    job: Job
    owner: str
    starred: bool = False
    board_ids: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Board:
    """A named collection of jobs of one user."""

    id: str
    name: str
    item_count: int
    created_at: datetime


@dataclass(frozen=True)
class QueueEntry:
    """A queued or running job in the queue view: its owner and, when queued, its place on its endpoint."""

    job: Job
    owner: str
    position: int | None
