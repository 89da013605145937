"""Published workflows and their immutable versions."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from sqlalchemy import func, select

from sdfleet.domain.notifications import EventType
from sdfleet.domain.workflows import InputType, WorkflowInput, WorkflowVersion
from sdfleet.store.database import Database
from sdfleet.store.outbox import emit
from sdfleet.store.tables import WorkflowApprovalRow, WorkflowRow, WorkflowVersionRow


def _input(value: dict) -> WorkflowInput:
    choices = value.get("choices")
    return WorkflowInput(name=value["name"], node=value["node"], input=value["input"], label=value["label"],
                         type=InputType(value["type"]), default=value.get("default"), min=value.get("min"),
                         max=value.get("max"), choices=tuple(choices) if choices is not None else None)


def _version(row: WorkflowVersionRow, current: int | None,
             approval: WorkflowApprovalRow | None = None) -> WorkflowVersion:
    return WorkflowVersion(
        requires_approval=approval is not None, approved_by=approval.approved_by if approval else None,
        approved_at=approval.approved_at if approval else None,
        name=row.workflow_name, version=row.version, description=row.description, graph=row.graph,
        ui_graph=row.ui_graph, inputs=tuple(_input(i) for i in row.inputs), allowed_roles=tuple(row.allowed_roles),
        models=tuple(row.models), published=row.published, created_by=row.created_by, created_at=row.created_at,
        current=row.version == current,
    )


def _input_json(value: WorkflowInput) -> dict:
    data = asdict(value)
    data["type"] = value.type.value
    data["choices"] = list(value.choices) if value.choices is not None else None
    return data


class SqlWorkflowStore:
    """Workflows by name; publishing appends a version and makes it current."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def publish(self, version: WorkflowVersion, *, now: datetime) -> WorkflowVersion:
        """Store a new version (its number is assigned here) and make it current."""
        with self._db.session(write_lock=True) as s:
            workflow = s.get(WorkflowRow, version.name, with_for_update=not self._db.is_sqlite)
            if workflow is None:
                workflow = WorkflowRow(name=version.name, current_version=None, created_at=now, updated_at=now)
                s.add(workflow)
                s.flush()
            number = (s.scalar(select(func.max(WorkflowVersionRow.version))
                               .where(WorkflowVersionRow.workflow_name == version.name)) or 0) + 1
            row = WorkflowVersionRow(
                workflow_name=version.name, version=number, description=version.description, graph=version.graph,
                ui_graph=version.ui_graph, inputs=[_input_json(i) for i in version.inputs],
                allowed_roles=list(version.allowed_roles), models=list(version.models), published=True,
                created_by=version.created_by, created_at=now,
            )
            s.add(row)
            s.flush()  # the version row before its approval row (no ORM relationship orders them)
            approval = None
            if version.requires_approval:  # artists keep the current version until this one is approved
                approval = WorkflowApprovalRow(workflow_name=version.name, version=number)
                s.add(approval)
            else:
                workflow.current_version = number
            workflow.updated_at = now
            s.flush()
            emit(s, EventType.WORKFLOW_VERSION_PUBLISHED, now=now, user_id=version.created_by,
                 data={"workflow": version.name, "version": number, "description": version.description})
            return _version(row, workflow.current_version, approval)

    def current(self, name: str) -> WorkflowVersion | None:
        """The current published version of a workflow."""
        with self._db.session() as s:
            workflow = s.get(WorkflowRow, name)
            if workflow is None or workflow.current_version is None:
                return None
            row = s.get(WorkflowVersionRow, (name, workflow.current_version))
            approval = s.get(WorkflowApprovalRow, (name, workflow.current_version))
            return _version(row, workflow.current_version, approval) if row else None

    def get(self, name: str, version: int) -> WorkflowVersion | None:
        with self._db.session() as s:
            workflow = s.get(WorkflowRow, name)
            row = s.get(WorkflowVersionRow, (name, version))
            approval = s.get(WorkflowApprovalRow, (name, version))
            return _version(row, workflow.current_version, approval) if row and workflow else None

    def versions(self, name: str) -> list[WorkflowVersion]:
        """Every version of a workflow, newest first."""
        with self._db.session() as s:
            workflow = s.get(WorkflowRow, name)
            if workflow is None:
                return []
            rows = s.scalars(select(WorkflowVersionRow).where(WorkflowVersionRow.workflow_name == name)
                             .order_by(WorkflowVersionRow.version.desc()))
            approvals = {a.version: a for a in s.scalars(select(WorkflowApprovalRow)
                                                         .where(WorkflowApprovalRow.workflow_name == name))}
            return [_version(r, workflow.current_version, approvals.get(r.version)) for r in rows]

    def list_current(self) -> list[WorkflowVersion]:
        """The current version of every workflow that has one, by name."""
        with self._db.session() as s:
            stmt = (select(WorkflowVersionRow, WorkflowRow.current_version, WorkflowApprovalRow)
                    .join(WorkflowRow, WorkflowRow.name == WorkflowVersionRow.workflow_name)
                    .outerjoin(WorkflowApprovalRow,
                               (WorkflowApprovalRow.workflow_name == WorkflowVersionRow.workflow_name)
                               & (WorkflowApprovalRow.version == WorkflowVersionRow.version))
                    .where(WorkflowVersionRow.version == WorkflowRow.current_version)
                    .order_by(WorkflowRow.name))
            return [_version(row, current, approval) for row, current, approval in s.execute(stmt).all()]

    def set_published(self, name: str, version: int, *, published: bool, now: datetime) -> WorkflowVersion | None:
        """Unpublish a version (the newest other published one becomes current) or publish it as current."""
        with self._db.session(write_lock=True) as s:
            workflow = s.get(WorkflowRow, name)
            row = s.get(WorkflowVersionRow, (name, version))
            if workflow is None or row is None:
                return None
            row.published = published
            s.flush()
            if published:
                workflow.current_version = version
            elif workflow.current_version == version:
                held = select(WorkflowApprovalRow.version).where(WorkflowApprovalRow.workflow_name == name,
                                                                  WorkflowApprovalRow.approved_by.is_(None))
                workflow.current_version = s.scalar(
                    select(func.max(WorkflowVersionRow.version))
                    .where(WorkflowVersionRow.workflow_name == name, WorkflowVersionRow.published.is_(True),
                           WorkflowVersionRow.version.not_in(held)))
            workflow.updated_at = now
            s.flush()
            return _version(row, workflow.current_version, s.get(WorkflowApprovalRow, (name, version)))

    def approve(self, name: str, version: int, *, approver: str, now: datetime) -> WorkflowVersion | None:
        """Record the approval of a held version and make it current when it is published (None: no such
        held version)."""
        with self._db.session(write_lock=True) as s:
            workflow = s.get(WorkflowRow, name)
            row = s.get(WorkflowVersionRow, (name, version))
            approval = s.get(WorkflowApprovalRow, (name, version))
            if workflow is None or row is None or approval is None:
                return None
            if approval.approved_by is None:
                approval.approved_by, approval.approved_at = approver, now
                if row.published:
                    workflow.current_version = version
                workflow.updated_at = now
                s.flush()
            return _version(row, workflow.current_version, approval)
