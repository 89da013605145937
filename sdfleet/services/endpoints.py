"""Endpoints: create, list, update, delete, replicas and events; routing jobs to endpoints a user may use."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta

from sdfleet.domain.accounts import Principal
from sdfleet.domain.audit import AuditAction, AuditTarget, field_changes
from sdfleet.domain.checkpoints import Checkpoint
from sdfleet.domain.endpoints import (
    EVERYONE,
    Endpoint,
    EndpointChange,
    EndpointConfig,
    EndpointEvent,
    EndpointStatus,
    Replica,
    ReplicaStatus,
    check_config,
    check_endpoint_name,
    is_valid_endpoint_name,
    may_use,
)
from sdfleet.domain.errors import Conflict, InvalidInput, NotFound
from sdfleet.domain.pagination import Page, PageRequest
from sdfleet.domain.permissions import ADMIN_ROLE, Permission
from sdfleet.domain.validation import check_role_name
from sdfleet.domain.workers import WorkerRecord
from sdfleet.jobs.queue import JobQueue
from sdfleet.jobs.records import JobStatus
from sdfleet.services.audit import AuditLog
from sdfleet.services.authorization import authorize
from sdfleet.store.endpoints import SqlEndpointStore
from sdfleet.store.workers import SqlWorkerRegistry

DEFAULT_ENDPOINT = "default"
#: worker names the fleet's launcher gives its replicas: `replica:<endpoint>:<n>`
REPLICA_PREFIX = "replica:"


def replica_worker_name(endpoint: str, index: int) -> str:
    """The worker name of a launcher-managed replica."""
    return f"{REPLICA_PREFIX}{endpoint}:{index}"


MEMORY_FIELDS = ("ram_total", "ram_free", "vram_total", "vram_free")


def worker_memory(info: dict | None) -> dict[str, int] | None:
    """The memory figures a worker reported in its `info` (bytes), or None when it reported none."""
    info = info or {}
    if not any(isinstance(info.get(k), int) for k in MEMORY_FIELDS):
        return None
    return {k: info[k] if isinstance(info.get(k), int) and info[k] >= 0 else 0 for k in MEMORY_FIELDS}


def _manages(principal: Principal) -> bool:
    return principal.can(Permission.ENDPOINT_ALL)


def _audited(config: EndpointConfig) -> dict:
    """An endpoint's settings as the audit log records them (replica counts: a scale)."""
    return {f.name: list(v) if isinstance(v := getattr(config, f.name), tuple) else v
            for f in dataclasses.fields(config)}


def _may_use(principal: Principal, endpoint: Endpoint) -> bool:
    return may_use(roles=principal.user.roles, is_admin=ADMIN_ROLE in principal.user.roles, config=endpoint.config)


class EndpointService:
    """Endpoint use cases; `endpoint:all` manages, other users see the endpoints their roles may use."""

    def __init__(self, *, store: SqlEndpointStore, queue: JobQueue, workers: SqlWorkerRegistry,
                 clock: Callable[[], datetime], lost_after_seconds: float = 60.0, audit: AuditLog | None = None,
                 launchers: dict[str, str | None] | None = None) -> None:
        #: launcher name → None when this server runs it, else why not (`ray` without SDFLEET_RAY_ADDRESS)
        self._launchers = dict(launchers or {"local": None})
        self._audit = audit
        self.store = store
        self._queue = queue
        self._workers = workers
        self._clock = clock
        self.lost_after = timedelta(seconds=lost_after_seconds)
        #: called after an endpoint is created, changed or deleted here (wakes this server's fleet manager)
        self.changed: list[Callable[[], None]] = []

    # 1. Reading
    def page(self, principal: Principal, page: PageRequest) -> Page[Endpoint]:
        """A page (by name) of the live endpoints: every one for managers; the ones their roles may use for
        others."""
        if page.after and not (isinstance(page.after[0], str) and is_valid_endpoint_name(page.after[0])):
            raise InvalidInput("cursor is not a cursor this server issued", field="cursor")
        return self.store.page(page, visible=None if _manages(principal) else lambda e: _may_use(principal, e))

    def get(self, principal: Principal, name: str) -> Endpoint:
        """One endpoint the caller may see (else NotFound)."""
        endpoint = self.store.get(name) if is_valid_endpoint_name(name) else None
        if endpoint is None or endpoint.status is EndpointStatus.DELETED and not _manages(principal):
            raise NotFound(f"endpoint {name!r} not found")
        if not _manages(principal) and not _may_use(principal, endpoint):
            raise NotFound(f"endpoint {name!r} not found")
        return endpoint

    def replicas(self, principal: Principal, name: str) -> list[Replica]:
        """The endpoint's workers and what each last reported."""
        self.get(principal, name)
        return self.replicas_of(name)

    def replicas_of(self, name: str) -> list[Replica]:
        """Replicas of an endpoint, no permission check (for the fleet manager)."""
        now = self._clock()
        return [self._replica(w, now) for w in self._workers.list(endpoint=name)]

    def _replica(self, worker: WorkerRecord, now: datetime) -> Replica:
        seen = worker.last_seen_at or worker.created_at
        try:
            status = ReplicaStatus(worker.status)
        except ValueError:
            status = ReplicaStatus.LOST
        if now - seen > self.lost_after:
            status = ReplicaStatus.LOST
        return Replica(worker_id=worker.id, name=worker.name, status=status, device=worker.device,
                       loaded_models=tuple(str(m) for m in worker.loaded_models), last_seen_at=worker.last_seen_at,
                       managed=worker.name.startswith(REPLICA_PREFIX), memory=worker_memory(worker.info))

    def load(self, name: str) -> tuple[int, int]:
        """(queued, running) jobs of an endpoint, for the autoscaler."""
        return self.store.load(name)

    def events(self, principal: Principal, name: str, *, after: int = 0, limit: int = 100) -> list[EndpointEvent]:
        """The endpoint's recorded decisions, oldest first, after sequence number `after`."""
        self.get(principal, name)
        return self.store.events_after(name, after, limit=limit)

    # 2. Changing
    def create(self, principal: Principal, name: str, config: EndpointConfig) -> Endpoint:
        """Create an endpoint (`endpoint:all`); the fleet starts its minimum replicas."""
        authorize(principal, Permission.ENDPOINT_ALL)
        check_endpoint_name(name)
        config = self._checked(config)
        if (missing := self._launchers.get(config.launcher, "")) is not None:
            raise InvalidInput(f"launcher {config.launcher!r} is not available on this server: "
                               f"{missing or 'not configured'}", field="launcher")
        endpoint = self.store.add(name, config, now=self._clock())
        if endpoint is None:
            raise Conflict(f"endpoint {name!r} already exists", details={"field": "name"})
        self._record(AuditAction.ENDPOINT_CREATE, principal, name, changes=field_changes({}, _audited(config)))
        return endpoint

    def update(self, principal: Principal, name: str, change: EndpointChange) -> Endpoint:
        """Change an endpoint's policy, devices, preload or roles (`endpoint:all`)."""
        authorize(principal, Permission.ENDPOINT_ALL)
        endpoint = self.get(principal, name)
        if not endpoint.status.live:
            raise Conflict(f"endpoint {name!r} is {endpoint.status.value}; it cannot be changed")
        values = {f.name: getattr(change, f.name) for f in dataclasses.fields(change)
                  if getattr(change, f.name) is not None}
        for key in ("devices", "preload", "allowed_roles", "kinds"):
            if key in values:
                values[key] = tuple(values[key])
        config = self._checked(dataclasses.replace(endpoint.config, **values))
        updated = self.store.update_config(name, config, now=self._clock())
        changes = field_changes(_audited(endpoint.config), _audited(config))
        if changes:
            self._record(AuditAction.ENDPOINT_UPDATE, principal, name, changes=changes)
        return updated

    def delete(self, principal: Principal, name: str, *, force: bool = False) -> Endpoint:
        """Drain and remove an endpoint; 409 while it runs jobs unless `force` (running jobs still finish,
        queued ones are cancelled)."""
        authorize(principal, Permission.ENDPOINT_ALL)
        endpoint = self.get(principal, name)
        if endpoint.status in (EndpointStatus.DELETING, EndpointStatus.DELETED):
            return endpoint
        running = self._queue.count(statuses=(JobStatus.RUNNING,), endpoint=name)
        if running and not force:
            raise Conflict(f"endpoint {name!r} is running {running} job(s); wait, or delete with force=true",
                           details={"running": running})
        deleting = self.store.set_state(name, now=self._clock(), status=EndpointStatus.DELETING,
                                        event=("deleting", {"running": running, "force": force}))
        # Nothing will run the jobs still waiting here: cancel them (their owners see `cancelled`).
        cancelled = [job.id for job_id in self.store.queued_jobs(name)
                     if (job := self._queue.cancel(job_id, now=self._clock())) is not None]  # None: deleted meanwhile
        if cancelled:
            self.store.record(name, "jobs_cancelled", {"count": len(cancelled)}, now=self._clock())
        self._record(AuditAction.ENDPOINT_DELETE, principal, name, changes=field_changes(_audited(endpoint.config), {}),
                     details={"force": force, "running": running, "jobs_cancelled": len(cancelled)})
        return deleting

    def _record(self, action: AuditAction, principal: Principal, name: str, *, changes: dict,
                details: dict | None = None) -> None:
        for listener in self.changed:
            listener()
        if self._audit is not None:
            self._audit.record(action, actor=principal, target=AuditTarget("endpoint", name, name), changes=changes,
                               details=details)

    def ensure_default(self, *, replicas: int, device: str) -> Endpoint | None:
        """On first start, create the `default` endpoint open to everyone with `replicas` local replicas."""
        if self.store.get(DEFAULT_ENDPOINT) is not None:
            return None
        config = EndpointConfig(devices=(device,), min_replicas=replicas, max_replicas=replicas,
                                idle_seconds=300.0, allowed_roles=(EVERYONE,))
        return self.store.add(DEFAULT_ENDPOINT, config, now=self._clock())

    def pinned_by(self, checkpoint: Checkpoint) -> list[str]:
        """Registry hook: the endpoints whose `preload` holds this checkpoint's file."""
        return [f"endpoint {name} preloads it" for name in self.store.preloading(checkpoint.sha256)]

    def _checked(self, config: EndpointConfig) -> EndpointConfig:
        config = check_config(config)
        roles = sorted({r if r == EVERYONE else check_role_name(r, field="allowed_roles")
                        for r in config.allowed_roles})
        wanted = [r for r in roles if r != EVERYONE]
        unknown, missing = self.store.unknown_references(roles=wanted, preload=list(config.preload))
        if unknown:
            raise InvalidInput(f"unknown role(s) in allowed_roles: {', '.join(unknown)}", field="allowed_roles")
        if missing:
            raise InvalidInput(f"preload: no registered model has sha256 {missing[0]}", field="preload")
        return dataclasses.replace(config, allowed_roles=tuple(roles))


class EndpointRouting:
    """Routes a job to an endpoint the user may use, preferring one whose replica has the model loaded.

    A job that no such endpoint could ever run is refused with 409 at submission."""

    def __init__(self, endpoints: EndpointService) -> None:
        self._endpoints = endpoints

    def route(self, principal: Principal, *, requested: str | None, model_sha256s: list[str],
              kind: str = "inference") -> str:
        usable = [e for e in self._endpoints.store.list()
                  if e.status.live and kind in e.config.kinds and _may_use(principal, e)]
        if requested is not None:
            if any(e.name == requested for e in usable):
                return requested
            raise Conflict(f"no endpoint named {requested!r} that you may use for {kind} jobs; available: "
                           f"{', '.join(e.name for e in usable) or 'none'}", details={"field": "endpoint"})
        if not usable:
            raise Conflict(f"no endpoint you may use runs {kind} jobs; ask an administrator for access"
                           + (" (an endpoint whose kinds include \"train\")" if kind == "train" else ""),
                           details={"field": "endpoint"})
        wanted = set(model_sha256s)
        return max(usable, key=lambda e: self._score(e, wanted)).name

    def _score(self, endpoint: Endpoint, wanted: set[str]) -> tuple:
        replicas = [r for r in self._endpoints.replicas_of(endpoint.name) if r.status is not ReplicaStatus.LOST]
        loaded = max((len(wanted & set(r.loaded_models)) for r in replicas), default=0)
        preloaded = len(wanted & set(endpoint.config.preload))
        # One that can run at all (it may start replicas, or has workers) first; then loaded models, preloads,
        # an endpoint that is up, `default`, and the name.
        can_run = endpoint.config.max_replicas > 0 or bool(replicas)
        return (can_run, loaded, preloaded, bool(replicas), endpoint.name == DEFAULT_ENDPOINT,
                _reverse(endpoint.name))


def _reverse(name: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in name)
