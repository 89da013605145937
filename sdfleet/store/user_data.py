"""What a user owns outside the accounts tables: the ids whose objects go when the user is deleted."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from sdfleet.store.tables import DatasetRow, JobRow


@dataclass(frozen=True)
class OwnedIds:
    """Ids of a user's rows that have objects in the store."""

    job_ids: list[str]  #: generations, imports and trainings (outputs, thumbnails, training artifacts)
    dataset_ids: list[str]  #: training datasets (their images)


class UserDataRepository:
    """Reads a user's owned ids inside the transaction that deletes the user."""

    def __init__(self, session: Session) -> None:
        self._s = session

    def owned_ids(self, user_id: str) -> OwnedIds:
        jobs = self._s.scalars(select(JobRow.id).where(JobRow.user_id == user_id)).all()
        datasets = self._s.scalars(select(DatasetRow.id).where(DatasetRow.user_id == user_id)).all()
        return OwnedIds(job_ids=list(jobs), dataset_ids=list(datasets))
