"""The gallery: search (the caller's images, or the team's with `gallery:all`), stars, boards, bulk zip
download and delete. Deleting stays the owner's; browsing a teammate's images needs `gallery:all`."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sdfleet.domain.accounts import Principal
from sdfleet.domain.errors import Forbidden, InvalidInput, NotFound
from sdfleet.domain.gallery import Board, GalleryItem, GalleryQuery
from sdfleet.domain.ids import is_valid_id
from sdfleet.domain.pagination import Page, PageRequest
from sdfleet.domain.permissions import Permission
from sdfleet.jobs.records import Job, JobOutput
from sdfleet.services.styles import check_name
from sdfleet.store.gallery import SqlGallery

MAX_BULK = 500  #: jobs per bulk download or delete
MAX_BOARDS = 200
MAX_TEXT = 500


class _Chunks(io.RawIOBase):
    """A write-only stream whose written bytes are taken out in pieces (zipfile writes, we stream)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


class GalleryService:
    """Gallery use cases; who may see which job is decided in `viewable`."""

    def __init__(self, *, store: SqlGallery, objects: Any, delete_job: Callable[[Principal, str], None],
                 clock: Callable[[], datetime]) -> None:
        self._store = store
        self._objects = objects
        self._delete_job = delete_job
        self._clock = clock

    # 1. Seeing
    def search(self, principal: Principal, query: GalleryQuery, page: PageRequest) -> Page[GalleryItem]:
        """The caller's jobs, or everyone's with `gallery:all`, matching the query, newest first."""
        if query.text is not None and len(query.text) > MAX_TEXT:
            raise InvalidInput(f"q must be at most {MAX_TEXT} characters", field="q")
        if (query.team or (query.owner and query.owner != principal.user.username)) \
                and not principal.can(Permission.GALLERY_ALL):
            raise Forbidden("browsing other users' images needs the gallery:all permission", details={"field": "scope"})
        if query.owner:
            query = GalleryQuery(**{**query.__dict__, "team": True})
        if query.board_id is not None and self._store.board(principal.user_id, query.board_id) is None:
            raise NotFound(f"board {query.board_id!r} not found", details={"field": "board"})
        return self._store.search(principal.user_id, query, page)

    def models(self, principal: Principal, *, team: bool) -> list[str]:
        """Model names used by the searchable jobs (for the model filter)."""
        if team and not principal.can(Permission.GALLERY_ALL):
            raise Forbidden("browsing other users' images needs the gallery:all permission", details={"field": "scope"})
        return self._store.models(principal.user_id, team=team)

    def viewable(self, principal: Principal, job_id: str) -> Job:
        """A job the caller may look at: their own, or anyone's with `gallery:all`; else not found."""
        owner = self._store.owner_of(job_id) if is_valid_id(job_id) else None
        if owner is None or (owner[0] != principal.user_id and not principal.can(Permission.GALLERY_ALL)):
            raise NotFound(f"inference {job_id!r} not found")
        job = self._store.job(job_id)
        if job is None:
            raise NotFound(f"inference {job_id!r} not found")
        return job

    def item(self, principal: Principal, job_id: str) -> GalleryItem:
        """One job as the gallery shows it."""
        self.viewable(principal, job_id)
        return self._store.item(principal.user_id, job_id)

    def open_output(self, principal: Principal, job_id: str, index: int) -> tuple[JobOutput, Iterator[bytes]]:
        """(output record, bytes) of one output image of a viewable job."""
        job = self.viewable(principal, job_id)
        output = next((o for o in job.outputs if o.index == index), None)
        if output is None:
            raise NotFound(f"inference {job_id!r} has no output {index}")
        return output, self._objects.open_range(output.key)

    def recent_prompts(self, principal: Principal, *, text: str | None, limit: int) -> list[dict[str, str]]:
        """The caller's prompt history: distinct prompt + negative prompt pairs, most recent first."""
        if text is not None and len(text) > MAX_TEXT:
            raise InvalidInput(f"q must be at most {MAX_TEXT} characters", field="q")
        return [{"prompt": p, "negative_prompt": n}
                for p, n in self._store.recent_prompts(principal.user_id, text=text, limit=limit)]

    # 2. Stars and boards
    def star(self, principal: Principal, job_id: str, *, on: bool) -> None:
        """Star or unstar a viewable job (stars are the caller's own)."""
        self.viewable(principal, job_id)
        self._store.star(principal.user_id, job_id, on=on, now=self._clock())

    def boards(self, principal: Principal) -> list[Board]:
        return self._store.boards(principal.user_id)

    def create_board(self, principal: Principal, name: Any) -> Board:
        name = check_name(name, what="board")
        if len(self._store.boards(principal.user_id)) >= MAX_BOARDS:
            raise InvalidInput(f"you have {MAX_BOARDS} boards; the limit is {MAX_BOARDS}", field="name")
        return self._store.add_board(principal.user_id, name, now=self._clock())

    def rename_board(self, principal: Principal, board_id: str, name: Any) -> Board:
        self._own_board(principal, board_id)
        self._store.rename_board(board_id, check_name(name, what="board"))
        return self._own_board(principal, board_id)

    def delete_board(self, principal: Principal, board_id: str) -> None:
        """Delete a board (its jobs stay in the gallery)."""
        self._own_board(principal, board_id)
        self._store.delete_board(board_id)

    def add_to_board(self, principal: Principal, board_id: str, job_ids: Sequence[str]) -> Board:
        self._own_board(principal, board_id)
        for job_id in self._bulk(job_ids):
            self.viewable(principal, job_id)
        self._store.add_to_board(board_id, list(job_ids), now=self._clock())
        return self._own_board(principal, board_id)

    def remove_from_board(self, principal: Principal, board_id: str, job_ids: Sequence[str]) -> Board:
        self._own_board(principal, board_id)
        self._store.remove_from_board(board_id, list(self._bulk(job_ids)))
        return self._own_board(principal, board_id)

    # 3. Bulk
    def delete_many(self, principal: Principal, job_ids: Sequence[str]) -> int:
        """Delete the caller's jobs and their images; any job that is not theirs refuses the whole request."""
        ids = list(dict.fromkeys(self._bulk(job_ids)))
        for job_id in ids:
            owner = self._store.owner_of(job_id) if is_valid_id(job_id) else None
            if owner is None or owner[0] != principal.user_id:
                raise NotFound(f"inference {job_id!r} not found (only your own jobs can be deleted)",
                               details={"field": "job_ids", "job_id": job_id})
        for job_id in ids:
            self._delete_job(principal, job_id)
        return len(ids)

    def zip_outputs(self, principal: Principal, job_ids: Sequence[str]) -> Iterator[bytes]:
        """A zip of every output of the jobs, streamed (PNG stored as is, with its parameters)."""
        jobs = [(self.viewable(principal, job_id), self._store.owner_of(job_id)[1])
                for job_id in dict.fromkeys(self._bulk(job_ids))]
        if not any(job.outputs for job, _ in jobs):
            raise InvalidInput("none of these jobs has an image to download", field="job_ids")
        team = any(owner != principal.user.username for _, owner in jobs)

        def stream() -> Iterator[bytes]:
            sink = _Chunks()
            with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
                for job, owner in jobs:
                    for output in job.outputs:
                        name = f"{owner}/" if team else ""
                        info = zipfile.ZipInfo(f"{name}{job.id}-{output.index}.png",
                                               date_time=(job.finished_at or job.queued_at).timetuple()[:6])
                        with archive.open(info, "w") as entry:
                            for chunk in self._objects.open_range(output.key):
                                entry.write(chunk)
                                yield sink.take()
            yield sink.take()

        return stream()

    def _bulk(self, job_ids: Sequence[str]) -> Sequence[str]:
        if not isinstance(job_ids, (list, tuple)) or not job_ids or not all(isinstance(j, str) for j in job_ids):
            raise InvalidInput("job_ids must be a non-empty list of job ids", field="job_ids")
        if len(job_ids) > MAX_BULK:
            raise InvalidInput(f"job_ids may hold at most {MAX_BULK} ids, got {len(job_ids)}", field="job_ids")
        return job_ids

    def _own_board(self, principal: Principal, board_id: str) -> Board:
        board = self._store.board(principal.user_id, board_id) if is_valid_id(board_id) else None
        if board is None:
            raise NotFound(f"board {board_id!r} not found")
        return board

