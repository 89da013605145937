"""The model registry: list, show, rename, share, delete and download checkpoints; register inspected files."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sdfleet.domain.accounts import Principal, User
from sdfleet.domain.audit import AuditAction, AuditEvent, AuditTarget, field_changes
from sdfleet.domain.checkpoints import (
    EVERYONE,
    SAFE_EXTENSIONS,
    Checkpoint,
    CheckpointStatus,
    ModelType,
    check_model_name,
    parse_model_type,
    safetensors_name,
)
from sdfleet.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from sdfleet.domain.ids import is_valid_id, new_id
from sdfleet.domain.pagination import Page, PageRequest
from sdfleet.domain.permissions import ADMIN_ROLE, Permission
from sdfleet.domain.validation import check_role_name
from sdfleet.jobs.spec import ModelPin
from sdfleet.modelfiles.types import ENGINE_FOLDERS
from sdfleet.services.audit import AuditLog
from sdfleet.services.authorization import authorize
from sdfleet.services.model_intake import Intake, ModelIntake, blob_key
from sdfleet.store.checkpoints import CheckpointFilter, CheckpointReads, SqlCheckpoints, Within

log = logging.getLogger("sdfleet.registry")

#: answers the reasons a checkpoint id is pinned (by an endpoint, a published workflow …); [] when free
PinCheck = Callable[[Checkpoint], list[str]]
MAX_ALLOWED_ROLES = 64


@dataclass(frozen=True)
class CheckpointQuery:
    """List filters, as given by the caller (strings, validated by the service)."""

    model_type: str | None = None
    status: str | None = None
    architecture: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Download:
    """A byte range of a checkpoint's file, ready to stream."""

    checkpoint: Checkpoint
    start: int
    #: inclusive, like HTTP Range
    end: int
    chunks: Iterator[bytes]


def is_admin(principal: Principal) -> bool:
    """Admins see every model and may force a delete."""
    return ADMIN_ROLE in principal.user.roles


def may_see(principal: Principal, checkpoint: Checkpoint) -> bool:
    """A model is visible to admins, to its uploader, and to holders of one of its allowed roles ("*": everyone).
    So no re-scoping hides a model from whoever registered it or from an admin."""
    if is_admin(principal) or (checkpoint.created_by is not None and checkpoint.created_by == principal.user_id):
        return True
    allowed = set(checkpoint.allowed_roles)
    return EVERYONE in allowed or bool(allowed & set(principal.user.roles))


def _visibility(principal: Principal) -> dict:
    """The list filter matching `may_see`: no filter for admins, else their roles, "*" and their own models."""
    if is_admin(principal):
        return {"roles": None, "owner": None}
    return {"roles": (*principal.user.roles, EVERYONE), "owner": principal.user_id}


_EVERY_MODEL = {"roles": None, "owner": None}


def _scope_of(reads: CheckpointReads, user_id: str | None) -> dict:
    """The models a registering user sees (the name check at registration); the operator sees all."""
    user = reads.user(user_id) if user_id is not None else None
    if user is None or ADMIN_ROLE in user.roles:
        return _EVERY_MODEL
    return {"roles": (*user.roles, EVERYONE), "owner": user.id}


def _audit_target(checkpoint: Checkpoint) -> AuditTarget:
    return AuditTarget("model", checkpoint.id, checkpoint.name)


def _ownership(principal: Principal | None, checkpoint: Checkpoint) -> dict:
    """Audit details saying whose model was changed: a change to someone else's model stands out."""
    return {"model_type": checkpoint.model_type.value, "uploader_id": checkpoint.created_by,
            "by_uploader": principal is not None and checkpoint.created_by == principal.user_id}


@dataclass
class CheckpointService:
    """Registry use cases; every permission check of the registry is made here."""

    store: SqlCheckpoints
    objects: object
    intake: ModelIntake
    clock: Callable[[], datetime]
    #: hooks consulted by delete (endpoint preloads, trainings), given by the composition root
    pinned_by: list[PinCheck] = field(default_factory=list)
    #: model create/rename/visibility/delete events (AuditLog); None records nothing
    audit: AuditLog | None = None

    # 1. Lookups for other features (jobs, workers, A1111/ComfyUI adapters)

    def blob_key(self, sha256: str) -> str:
        """The object key of a model's file."""
        return blob_key(sha256)

    def get_by_sha256(self, sha256: str) -> Checkpoint | None:
        """Any checkpoint whose file has this sha256 (no permission check: for workers and jobs)."""
        return self.store.get_by_sha256(sha256)

    def get_record(self, checkpoint_id: str) -> Checkpoint | None:
        """A checkpoint by id, no permission check (for pin hooks)."""
        if not is_valid_id(checkpoint_id):
            return None
        return self.store.get(checkpoint_id)

    def resolve(self, principal: Principal, *, model_type: str, name: str) -> Checkpoint:
        """The active model of this type and name that the principal may see; NotFound names it otherwise."""
        kind = parse_model_type(model_type)
        found = None
        if isinstance(name, str) and 0 < len(name) <= 255:
            found = self.store.find_by_name(kind.value, name, **_visibility(principal))
        if found is None or found.status is not CheckpointStatus.ACTIVE or not may_see(principal, found):
            raise NotFound(f"{kind.value} model {name!r} not found", details={"type": kind.value, "name": name})
        return found

    def visible_names(self, principal: Principal, model_type: str) -> list[str]:
        """Names of the active models of a type the principal may see, sorted (for model pickers)."""
        kind = parse_model_type(model_type).value
        return self.visible_names_by_type(principal).get(kind, [])

    def visible_names_by_type(self, principal: Principal) -> dict[str, list[str]]:
        """Every active model name the principal may see, by type, sorted — one query."""
        pairs = self.store.names_by_type(status=CheckpointStatus.ACTIVE.value, **_visibility(principal))
        names: dict[str, list[str]] = {}
        for kind, name in sorted(set(pairs)):  # a name held by two visible models is offered once
            names.setdefault(kind, []).append(name)
        return {kind: sorted(values, key=str.lower) for kind, values in names.items()}

    def visible_pins(self, principal: Principal) -> list[ModelPin]:
        """Every active model the principal may see, as the pins a job would hold, sorted by name — one query."""
        rows = self.store.pins(status=CheckpointStatus.ACTIVE.value, **_visibility(principal))
        return sorted((ModelPin(folder=ENGINE_FOLDERS[ModelType(kind)], name=name, sha256=sha256, size=size)
                       for kind, name, sha256, size in rows), key=lambda pin: pin.name.lower())

    def is_empty(self) -> bool:
        """Whether nothing is registered (serve registers the demo models then)."""
        return self.store.count() == 0

    # 2. Reading

    def list(self, principal: Principal, query: CheckpointQuery, page: PageRequest) -> Page[Checkpoint]:
        """Checkpoints the principal may see, oldest first, narrowed by type, status, architecture, name."""
        where = CheckpointFilter(
            model_type=parse_model_type(query.model_type).value if query.model_type is not None else None,
            status=_parse_status(query.status) if query.status is not None else None,
            architecture=_check_filter(query.architecture, field="architecture"),
            name=_check_filter(query.name, field="name"),
            **_visibility(principal),
        )
        return self.store.list(page, where)

    def get(self, principal: Principal, checkpoint_id: str) -> Checkpoint:
        """One checkpoint the principal may see."""
        found = None
        if is_valid_id(checkpoint_id):
            found = self.store.get(checkpoint_id)
        if found is None or not may_see(principal, found):
            raise NotFound(f"checkpoint {checkpoint_id!r} not found")
        return found

    def open_download(self, principal: Principal, checkpoint_id: str, *, start: int = 0, end: int | None = None
                      ) -> Download:
        """Stream bytes `start..end` (inclusive) of a visible checkpoint's file."""
        checkpoint = self.get(principal, checkpoint_id)
        last = checkpoint.size - 1 if end is None else min(end, checkpoint.size - 1)
        if start < 0 or start > last:
            raise InvalidInput(
                f"range must lie within the file's {checkpoint.size} bytes, got start {start}", field="range"
            )
        chunks = self.objects.open_range(self.blob_key(checkpoint.sha256), start=start, end=last)
        return Download(checkpoint=checkpoint, start=start, end=last, chunks=chunks)

    # 3. Changing

    def update(
        self, principal: Principal, checkpoint_id: str, *, name: str | None = None,
        allowed_roles: list[str] | None = None,
    ) -> Checkpoint:
        """Rename a checkpoint or change who may see it (`checkpoint:all`); both are audited, with whose model
        it is. Its uploader and admins keep seeing it whatever `allowed_roles` says."""
        authorize(principal, Permission.CHECKPOINT_ALL)
        current = self.get(principal, checkpoint_id)
        if name is not None:
            check_model_name(name)
            if not name.lower().endswith(SAFE_EXTENSIONS):
                raise InvalidInput(f"name must end with .safetensors (stored files are safetensors), got {name!r}",
                                   field="name")
        roles = self._check_roles(allowed_roles) if allowed_roles is not None else None
        check_name = None
        if name is not None and name != current.name:
            def check_name(reads: CheckpointReads) -> None:
                self._check_name_free(reads, current.model_type, name, _visibility(principal))

        updated = self.store.update(current, name=name, allowed_roles=roles, now=self.clock(), check_name=check_name,
                                    audit=lambda after: self._update_events(principal, current, after))
        if updated is None:
            raise _name_taken(current.model_type, name or current.name)
        return updated

    def delete(self, principal: Principal, checkpoint_id: str, *, force: bool = False) -> None:
        """Delete a checkpoint (`checkpoint:all`); 409 while something pins it unless an admin forces it."""
        authorize(principal, Permission.CHECKPOINT_ALL)
        checkpoint = self.get(principal, checkpoint_id)
        if force and not is_admin(principal):
            raise Forbidden("only an admin may force the deletion of a pinned model", details={"field": "force"})
        reasons = [reason for check in self.pinned_by for reason in check(checkpoint)]
        if reasons and not force:
            raise Conflict(
                f"checkpoint {checkpoint.name!r} is in use: {'; '.join(reasons)}",
                details={"pinned_by": reasons},
            )
        event = self._event(AuditAction.MODEL_DELETE, principal, checkpoint,
                            changes=field_changes({"name": checkpoint.name,
                                                   "allowed_roles": list(checkpoint.allowed_roles)}, {}),
                            details={"forced": bool(reasons), "pinned_by": reasons})
        orphaned = self.store.delete(checkpoint, event=event)
        if orphaned:
            self.objects.delete(self.blob_key(checkpoint.sha256))

    # 4. Registering inspected files (uploads, imports, demo models)

    def default_roles(self, principal: Principal | None, allowed_roles: list[str] | None) -> tuple[str, ...]:
        """Checked `allowed_roles`; when none are given, everyone ("*"): a registry is a team's shared model
        folder, and restricting a model is the deliberate act (docs/decisions.md)."""
        if allowed_roles is not None:
            return tuple(self._check_roles(allowed_roles))
        return (EVERYONE,)

    def check_name_free(self, model_type: ModelType, name: str, principal: Principal | None = None) -> None:
        """Fail early with 409 when a model of this type that `principal` can see already has this name (None:
        the operator, who sees every model). A model the caller cannot see never makes a name taken: the answer
        would tell them it exists (issue 11, item 7; docs/decisions.md)."""
        scope = _visibility(principal) if principal is not None else _EVERY_MODEL
        self.store.read(lambda reads: self._check_name_free(reads, model_type, name, scope))

    def register(
        self, intake: Intake, *, name: str, model_type: ModelType, allowed_roles: tuple[str, ...],
        created_by: str | None, source: str, actor: Principal | None = None,
        within: Within | None = None,
    ) -> Checkpoint:
        """Place the inspected file's blob and add the checkpoint; nothing is left behind when that fails.
        `actor`: the signed-in caller (an upload); None when the server registers on a user's behalf (an import,
        a training) or for the operator (CLI, demo models). `within` runs in the transaction that adds the
        checkpoint (a leased import finishes there, so a stale lease adds nothing)."""
        name = safetensors_name(name) if intake.converted else name

        def check_name(reads: CheckpointReads) -> None:
            self._check_name_free(reads, model_type, name, _scope_of(reads, created_by))

        self.store.read(check_name)
        created = self.intake.place(intake)
        now = self.clock()
        info = intake.inspection
        checkpoint = Checkpoint(
            id=new_id(), name=name, model_type=model_type, sha256=info.sha256, short_hash=info.short_hash,
            architecture=info.architecture, layout=info.layout, precision=info.precision, size=info.size,
            format=info.format, tensor_count=info.tensor_count, status=CheckpointStatus.ACTIVE,
            allowed_roles=allowed_roles, created_by=created_by, created_at=now, updated_at=now, source=source,
            metadata=dict(info.metadata),
        )

        def audit(added: Checkpoint, reads: CheckpointReads) -> AuditEvent | None:
            # An import or a training registers on its owner's behalf: the event names them.
            owner: User | None = reads.user(created_by) if actor is None and created_by else None
            return self._event(AuditAction.MODEL_CREATE, actor, added,
                               changes=field_changes({}, {"name": added.name, "allowed_roles": list(allowed_roles)}),
                               details={"source": source, "sha256": info.sha256},
                               actor_name=owner.username if owner is not None else None)

        try:
            added = self.store.add(checkpoint, check=check_name, audit=audit, within=within)
            if added is None:
                raise _name_taken(model_type, name)
            return added
        except BaseException:
            if created:
                self._delete_blob_if_unused(info.sha256)
            raise

    def register_file(
        self, path: Path, *, name: str, model_type: str, allowed_roles: list[str] | None = None,
        source: str = "cli",
    ) -> Checkpoint:
        """Register a local file as the operator (CLI, demo models): no permission check."""
        kind = parse_model_type(model_type)
        check_model_name(name)
        roles = self.default_roles(None, allowed_roles)
        intake = self.intake.inspect_file(Path(path), declared=kind)
        try:
            return self.register(intake, name=name, model_type=kind, allowed_roles=roles, created_by=None,
                                 source=source)
        finally:
            self.intake.discard(intake)

    # Internals

    def _event(self, action: AuditAction, principal: Principal | None, checkpoint: Checkpoint, *, changes: dict,
               details: dict | None = None, actor_name: str | None = None) -> AuditEvent | None:
        """The audit event of a change, for the store to append in its transaction (None: no audit log)."""
        if self.audit is None:
            return None
        ownership = _ownership(principal, checkpoint)
        if actor_name is not None:
            ownership["by_uploader"] = True
        return self.audit.event(action, actor=principal, target=_audit_target(checkpoint), changes=changes,
                                details={**ownership, **(details or {})}, actor_name=actor_name)

    def _update_events(self, principal: Principal, before: Checkpoint, after: Checkpoint
                       ) -> list[AuditEvent | None]:
        events = []
        if before.name != after.name:
            events.append(self._event(AuditAction.MODEL_RENAME, principal, after,
                                      changes=field_changes({"name": before.name}, {"name": after.name})))
        if set(before.allowed_roles) != set(after.allowed_roles):
            events.append(self._event(AuditAction.MODEL_VISIBILITY, principal, after,
                                      changes=field_changes({"allowed_roles": sorted(before.allowed_roles)},
                                                            {"allowed_roles": sorted(after.allowed_roles)})))
        return events

    def _delete_blob_if_unused(self, sha256: str) -> None:
        unused = self.store.count_by_sha256(sha256) == 0
        if unused:
            with contextlib.suppress(Exception):
                self.objects.delete(self.blob_key(sha256))

    @staticmethod
    def _check_name_free(reads: CheckpointReads, model_type: ModelType, name: str, scope: dict) -> None:
        if reads.find_by_name(model_type.value, name, **scope) is not None:
            raise _name_taken(model_type, name)

    def _check_roles(self, roles: list[str]) -> list[str]:
        if len(roles) > MAX_ALLOWED_ROLES:
            raise InvalidInput(f"allowed_roles may list at most {MAX_ALLOWED_ROLES} roles", field="allowed_roles")
        names = sorted({r if r == EVERYONE else check_role_name(r, field="allowed_roles") for r in roles})
        if not names:
            raise InvalidInput("allowed_roles must name at least one role (or '*' for everyone)",
                               field="allowed_roles")
        wanted = [n for n in names if n != EVERYONE]
        known = self.store.role_names(wanted)
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise InvalidInput(f"unknown role(s) in allowed_roles: {', '.join(unknown)}", field="allowed_roles",
                               details={"roles": unknown})
        return names


def _name_taken(model_type: ModelType, name: str) -> Conflict:
    return Conflict(f"a {model_type.value} model named {name!r} already exists", details={"field": "name"})


def _parse_status(value: str) -> str:
    try:
        return CheckpointStatus(value).value
    except ValueError:
        accepted = ", ".join(s.value for s in CheckpointStatus)
        raise InvalidInput(f"status must be one of {accepted}; got {value!r}", field="status") from None


def _check_filter(value: str | None, *, field: str) -> str | None:
    if value is None:
        return None
    if len(value) > 255 or any(not c.isprintable() for c in value):
        raise InvalidInput(f"{field} filter must be 1-255 printable characters", field=field)
    return value or None
