"""Gallery queries over the jobs table: search by prompt, model, status and date in SQL with paging; stars,
boards; the queue in claim order; a user's recent prompts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, exists, func, select, type_coerce
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import Text

from sdfleet.domain.errors import Conflict
from sdfleet.domain.gallery import Board, GalleryItem, GalleryQuery, QueueEntry
from sdfleet.domain.ids import new_id
from sdfleet.domain.pagination import Page, PageRequest, page_from_rows
from sdfleet.jobs.records import JobKind, JobStatus
from sdfleet.store.database import Database
from sdfleet.store.jobs import _job as job_record  # one row → record mapping for the jobs table
from sdfleet.store.tables import BoardItemRow, BoardRow, JobRow, JobStarRow, UserRow

ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)


def _like(text: str) -> str:
    return "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class SqlGallery:
    """Reads the jobs table for the gallery; writes only stars and boards."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def _summary(self, key: str):
        """A text field of the job's JSON summary, in SQL."""
        if self._db.is_sqlite:
            return func.json_extract(JobRow.summary, f"$.{key}")
        return func.json_extract_path_text(type_coerce(JobRow.summary, Text).cast(postgresql.JSON), key)

    # 1. Search
    def search(self, viewer_id: str, query: GalleryQuery, page: PageRequest) -> Page[GalleryItem]:
        """Inference jobs matching `query`, newest first (the caller's only unless `query.team`)."""
        stmt = (select(JobRow, UserRow.username).join(UserRow, UserRow.id == JobRow.user_id)
                .where(JobRow.kind == JobKind.INFERENCE.value).order_by(JobRow.id.desc()).limit(page.limit + 1))
        if not query.team:
            stmt = stmt.where(JobRow.user_id == viewer_id)
        if query.owner:
            stmt = stmt.where(UserRow.username == query.owner)
        for word in (query.text or "").split():
            stmt = stmt.where(func.lower(self._summary("prompt")).like(_like(word), escape="\\"))
        if query.model:
            stmt = stmt.where(self._summary("model") == query.model)
        if query.status is not None:
            stmt = stmt.where(JobRow.status == query.status.value)
        if query.since is not None:
            stmt = stmt.where(JobRow.queued_at >= query.since)
        if query.until is not None:
            stmt = stmt.where(JobRow.queued_at < query.until)
        if query.starred:
            stmt = stmt.where(exists().where(JobStarRow.job_id == JobRow.id, JobStarRow.user_id == viewer_id))
        if query.board_id:
            stmt = stmt.where(exists().where(BoardItemRow.job_id == JobRow.id, BoardItemRow.board_id == query.board_id))
        if page.after:
            stmt = stmt.where(JobRow.id < str(page.after[0]))
        with self._db.session(write_lock=False) as s:
            items = self._decorate(s, viewer_id, [(job_record(row), name) for row, name in s.execute(stmt)])
        return page_from_rows(items, limit=page.limit, key=lambda item: [item.job.id])

    def item(self, viewer_id: str, job_id: str) -> GalleryItem | None:
        """One inference job with its owner and the viewer's star and boards."""
        stmt = (select(JobRow, UserRow.username).join(UserRow, UserRow.id == JobRow.user_id)
                .where(JobRow.id == job_id, JobRow.kind == JobKind.INFERENCE.value))
        with self._db.session(write_lock=False) as s:
            items = self._decorate(s, viewer_id, [(job_record(row), name) for row, name in s.execute(stmt)])
        return items[0] if items else None

    @staticmethod
    def _decorate(s, viewer_id: str, rows: list) -> list[GalleryItem]:
        ids = [job.id for job, _ in rows]
        starred = set(s.scalars(select(JobStarRow.job_id).where(JobStarRow.user_id == viewer_id,
                                                                JobStarRow.job_id.in_(ids))))
        boards: dict[str, list[str]] = {}
        for job_id, board_id in s.execute(
                select(BoardItemRow.job_id, BoardItemRow.board_id).join(BoardRow, BoardRow.id == BoardItemRow.board_id)
                .where(BoardRow.user_id == viewer_id, BoardItemRow.job_id.in_(ids))):
            boards.setdefault(job_id, []).append(board_id)
        return [GalleryItem(job=job, owner=username, starred=job.id in starred,
                            board_ids=tuple(sorted(boards.get(job.id, ())))) for job, username in rows]

    def job(self, job_id: str):
        """The job record, or None."""
        with self._db.session(write_lock=False) as s:
            row = s.get(JobRow, job_id)
            return None if row is None else job_record(row)

    def owner_of(self, job_id: str) -> tuple[str, str] | None:
        """(user id, username) of an inference job, or None."""
        with self._db.session(write_lock=False) as s:
            row = s.execute(select(JobRow.user_id, UserRow.username).join(UserRow, UserRow.id == JobRow.user_id)
                            .where(JobRow.id == job_id, JobRow.kind == JobKind.INFERENCE.value)).first()
            return None if row is None else (row[0], row[1])

    def models(self, viewer_id: str, *, team: bool) -> list[str]:
        """The model names the searchable jobs used."""
        stmt = select(self._summary("model")).where(JobRow.kind == JobKind.INFERENCE.value).distinct()
        if not team:
            stmt = stmt.where(JobRow.user_id == viewer_id)
        with self._db.session(write_lock=False) as s:
            return sorted(m for m in s.scalars(stmt) if m)

    def recent_prompts(self, user_id: str, *, text: str | None, limit: int) -> list[tuple[str, str]]:
        """The user's distinct (prompt, negative prompt) pairs, most recently used first."""
        prompt = self._summary("prompt")
        negative = self._summary("params.negative_prompt") if self._db.is_sqlite else func.json_extract_path_text(
            type_coerce(JobRow.summary, Text).cast(postgresql.JSON), "params", "negative_prompt")
        inner = (select(prompt.label("prompt"), func.coalesce(negative, "").label("negative"), JobRow.id.label("id"))
                 .where(JobRow.user_id == user_id, JobRow.kind == JobKind.INFERENCE.value))
        for word in (text or "").split():
            inner = inner.where(func.lower(prompt).like(_like(word), escape="\\"))
        used = inner.subquery()
        stmt = (select(used.c.prompt, used.c.negative).where(used.c.prompt.is_not(None), used.c.prompt != "")
                .group_by(used.c.prompt, used.c.negative).order_by(func.max(used.c.id).desc()).limit(limit))
        with self._db.session(write_lock=False) as s:
            return [(p, n or "") for p, n in s.execute(stmt)]

    # 2. Stars
    def star(self, user_id: str, job_id: str, *, on: bool, now: datetime) -> None:
        with self._db.session() as s:
            row = s.get(JobStarRow, (user_id, job_id))
            if on and row is None:
                s.add(JobStarRow(user_id=user_id, job_id=job_id, created_at=now))
            elif not on and row is not None:
                s.delete(row)

    # 3. Boards
    def boards(self, user_id: str) -> list[Board]:
        count = func.count(BoardItemRow.job_id)
        stmt = (select(BoardRow, count).outerjoin(BoardItemRow, BoardItemRow.board_id == BoardRow.id)
                .where(BoardRow.user_id == user_id).group_by(BoardRow.id).order_by(BoardRow.name))
        with self._db.session(write_lock=False) as s:
            return [Board(id=b.id, name=b.name, item_count=n, created_at=b.created_at) for b, n in s.execute(stmt)]

    def board(self, user_id: str, board_id: str) -> Board | None:
        return next((b for b in self.boards(user_id) if b.id == board_id), None)

    def add_board(self, user_id: str, name: str, *, now: datetime) -> Board:
        try:
            with self._db.session() as s:
                s.add(BoardRow(id=(board_id := new_id()), user_id=user_id, name=name, created_at=now))
        except IntegrityError:
            raise Conflict(f"you already have a board named {name!r}", details={"field": "name"}) from None
        return Board(id=board_id, name=name, item_count=0, created_at=now)

    def rename_board(self, board_id: str, name: str) -> None:
        try:
            with self._db.session() as s:
                s.get(BoardRow, board_id).name = name
        except IntegrityError:
            raise Conflict(f"you already have a board named {name!r}", details={"field": "name"}) from None

    def delete_board(self, board_id: str) -> None:
        with self._db.session() as s:
            s.execute(delete(BoardRow).where(BoardRow.id == board_id))

    def add_to_board(self, board_id: str, job_ids: Sequence[str], *, now: datetime) -> None:
        with self._db.session() as s:
            present = set(s.scalars(select(BoardItemRow.job_id).where(BoardItemRow.board_id == board_id,
                                                                      BoardItemRow.job_id.in_(job_ids))))
            for job_id in dict.fromkeys(job_ids):
                if job_id not in present:
                    s.add(BoardItemRow(board_id=board_id, job_id=job_id, added_at=now))

    def remove_from_board(self, board_id: str, job_ids: Sequence[str]) -> None:
        with self._db.session() as s:
            s.execute(delete(BoardItemRow).where(BoardItemRow.board_id == board_id, BoardItemRow.job_id.in_(job_ids)))

    # 4. The queue, in claim order
    def queue(self, *, user_id: str | None, limit: int) -> list[QueueEntry]:
        """Queued and running inference jobs (everyone's, or one user's), running first, then in claim order;
        a queued job's position counts every queued job ahead of it on its endpoint, whoever owns it."""
        ranked = (select(JobRow.id.label("job_id"), func.row_number().over(
            partition_by=JobRow.endpoint, order_by=(JobRow.fair_rank, JobRow.queued_at, JobRow.id)).label("position"))
            .where(JobRow.status == JobStatus.QUEUED.value, JobRow.kind == JobKind.INFERENCE.value).subquery())
        stmt = (select(JobRow, UserRow.username, ranked.c.position).join(UserRow, UserRow.id == JobRow.user_id)
                .outerjoin(ranked, ranked.c.job_id == JobRow.id)
                .where(JobRow.status.in_(ACTIVE), JobRow.kind == JobKind.INFERENCE.value)
                .order_by((JobRow.status == JobStatus.QUEUED.value), ranked.c.position, JobRow.id).limit(limit))
        if user_id is not None:
            stmt = stmt.where(JobRow.user_id == user_id)
        with self._db.session(write_lock=False) as s:
            return [QueueEntry(job=job_record(row), owner=username, position=position)
                    for row, username, position in s.execute(stmt)]

    def queue_counts(self) -> dict[str, int]:
        """How many inference jobs are queued and running, across everyone."""
        with self._db.session(write_lock=False) as s:
            counts = dict(s.execute(select(JobRow.status, func.count()).where(
                JobRow.status.in_(ACTIVE), JobRow.kind == JobKind.INFERENCE.value).group_by(JobRow.status)).all())
        return {status: counts.get(status, 0) for status in ACTIVE}

