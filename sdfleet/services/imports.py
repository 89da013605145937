"""Model imports from a URL: an SSRF-safe download on a small thread pool of the API server that holds the import's
lease (renewed by `tick`); a server that stops is replaced by any other once its lease expires."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from sdfleet.domain.accounts import Principal
from sdfleet.domain.checkpoints import (
    ImportJob,
    ImportStatus,
    check_model_name,
    parse_model_type,
    safetensors_name,
)
from sdfleet.domain.errors import DomainError, InvalidInput
from sdfleet.domain.ids import new_id
from sdfleet.domain.permissions import Permission
from sdfleet.services.authorization import authorize, fetch_owned
from sdfleet.services.checkpoints import CheckpointService
from sdfleet.services.url_fetch import FetchError, FetchPolicy, Resolver, fetch_to_file
from sdfleet.services.url_guard import UrlRefused, address_refusal, check_name, parse_url
from sdfleet.store.imports import ImportLease, ImportLeaseLost, SqlImports

log = logging.getLogger("sdfleet.registry.imports")

#: a server takes an import on at most this many times (the first, then takeovers of an expired lease)
MAX_ATTEMPTS = 3
EXHAUSTED_REASON = f"the servers running this import stopped {MAX_ATTEMPTS} times; start it again"
#: progress is written at most this often (seconds)
PROGRESS_INTERVAL_S = 0.5


@dataclass(frozen=True)
class ImportRequest:
    """What to fetch and how to register it."""

    url: str
    model_type: str
    name: str | None = None
    allowed_roles: list[str] | None = None


class _Held:
    """An import this server holds: its token, and whether a heartbeat found the lease lost."""

    def __init__(self, token: int) -> None:
        self.token = token
        self.lost = threading.Event()


class ImportService:
    """Creates import jobs and runs them on a small bounded thread pool inside the API process, each under a lease
    that `tick` renews; `tick` also takes over imports whose server stopped renewing theirs."""

    def __init__(
        self, *, store: SqlImports, checkpoints: CheckpointService, policy: FetchPolicy,
        clock: Callable[[], datetime], max_workers: int = 2, resolver: Resolver | None = None,
        lease_seconds: float = 30.0, owner: str | None = None,
    ) -> None:
        self._store = store
        self._checkpoints = checkpoints
        self._policy = policy
        self._clock = clock
        self._max_workers = max_workers
        self._resolver = resolver
        self._lease_seconds = lease_seconds
        #: this server's name on the leases it holds (host, process, and a nonce: a restarted pid is another server)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{new_id()[:8]}"
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._held: dict[str, _Held] = {}

    @property
    def tick_interval(self) -> float:
        """How often `tick` should run: three renewals fit in one lease."""
        return max(0.2, self._lease_seconds / 3)

    def tick(self) -> int:
        """Renew the leases of the imports this server runs, then take over expired ones while threads are free;
        returns how many were taken over."""
        # 1. Heartbeat: a lease found lost stops its download at the next chunk.
        with self._lock:
            held = list(self._held.items())
        for import_id, entry in held:
            try:
                self._store.renew(import_id, token=entry.token, now=self._clock(), lease_seconds=self._lease_seconds)
            except ImportLeaseLost:
                log.warning("import %s: lease lost (another server took it over)", import_id)
                entry.lost.set()
        # 2. Takeover, up to the free threads
        with self._lock:
            free = self._max_workers - len(self._held)
        if free <= 0:
            return 0
        leases = self._store.claim_expired(
            owner=self.owner, now=self._clock(), lease_seconds=self._lease_seconds, limit=free,
            max_attempts=MAX_ATTEMPTS, exhausted_reason=EXHAUSTED_REASON)
        for lease in leases:
            log.info("import %s: taking over (attempt %d)", lease.job.id, lease.job.attempts)
            self._start(lease)
        return len(leases)

    def hand_back(self) -> int:
        """This server is stopping: stop its downloads (at their next chunk) and expire their leases now, so another
        server takes them over without waiting for the lease to run out. Returns how many were handed back."""
        with self._lock:
            held = list(self._held.items())
        handed = 0
        for import_id, entry in held:
            entry.lost.set()
            try:
                self._store.release(import_id, token=entry.token, now=self._clock())
                handed += 1
            except ImportLeaseLost:
                pass  # finished or taken over meanwhile
        if handed:
            log.info("handed %d import(s) back for another server to finish", handed)
        return handed

    def running(self) -> int:
        """How many imports this server holds now."""
        with self._lock:
            return len(self._held)

    def create(self, principal: Principal, request: ImportRequest) -> ImportJob:
        """Check the URL and queue the download (`checkpoint:all`); refused URLs are a 422 at once."""
        authorize(principal, Permission.CHECKPOINT_ALL)
        model_type = parse_model_type(request.model_type)
        if request.name is not None:
            check_model_name(request.name)
            self._checkpoints.check_name_free(model_type, safetensors_name(request.name), principal)
        self._precheck(request.url)
        roles = self._checkpoints.default_roles(principal, request.allowed_roles)
        now = self._clock()
        job = ImportJob(
            id=new_id(), user_id=principal.user_id, url=request.url, model_type=model_type, name=request.name,
            allowed_roles=roles, status=ImportStatus.QUEUED, bytes_done=0, bytes_total=None, created_at=now,
            updated_at=now,
        )
        lease = self._store.add(job, owner=self.owner, lease_until=now + timedelta(seconds=self._lease_seconds))
        self._start(lease)
        return lease.job

    def get(self, principal: Principal, import_id: str) -> ImportJob:
        """One import of the caller's, with its progress."""
        return fetch_owned(principal, Permission.CHECKPOINT_ALL, import_id, fetch=self._store.get, what="import")

    def wait(self, timeout: float = 30.0) -> None:
        """Wait until every submitted import has finished (tests, shutdown)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    close = wait

    # Internals

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self._max_workers, thread_name_prefix="sdfleet-import")
            return self._pool

    def _precheck(self, url: str) -> None:
        """The checks that need no network: scheme, syntax, IP literals and local names (unless allow-listed)."""
        try:
            target = parse_url(url)
            if target.matches(self._policy.allowed_hosts):
                return
            if target.literal is not None:
                reason = address_refusal(target.literal)
                if reason is not None:
                    raise UrlRefused(f"address {target.literal} is {reason}")
            else:
                check_name(target.host)
        except UrlRefused as exc:
            raise InvalidInput(f"url refused: {exc.reason}", field="url", details={"reason": "url_refused"}) from None

    def _start(self, lease: ImportLease) -> None:
        entry = _Held(lease.token)
        with self._lock:
            self._held[lease.job.id] = entry
        self._executor().submit(self._run, lease.job, entry)

    def _update(self, import_id: str, entry: _Held, **values) -> None:
        self._store.update(import_id, token=entry.token, now=self._clock(), **values)

    def _finish(self, import_id: str, entry: _Held, **values) -> None:
        self._store.finish(import_id, token=entry.token, now=self._clock(), **values)

    def _run(self, job: ImportJob, entry: _Held) -> None:
        try:
            self._attempt(job, entry)
        except ImportLeaseLost:
            log.warning("import %s: this server no longer holds it (taken over or handed back); this attempt stops",
                        job.id)
        except Exception:
            log.exception("import %s failed", job.id)
            with contextlib.suppress(ImportLeaseLost):
                self._finish(job.id, entry, status=ImportStatus.FAILED, error="internal error while importing")
        finally:
            with self._lock:
                self._held.pop(job.id, None)

    def _attempt(self, job: ImportJob, entry: _Held) -> None:
        import_id = job.id
        self._update(import_id, entry, status=ImportStatus.RUNNING)
        path = self._checkpoints.intake.scratch_file(".download")
        intake = None
        try:
            # 1. Download, writing progress now and then; a lost lease stops it
            last = [0.0]

            def progress(done: int, total: int | None) -> None:
                if entry.lost.is_set():
                    raise ImportLeaseLost(import_id)
                now = time.monotonic()
                if now - last[0] >= PROGRESS_INTERVAL_S:
                    last[0] = now
                    self._update(import_id, entry, bytes_done=done, bytes_total=total)

            with path.open("wb") as dest:
                result = fetch_to_file(job.url, dest, policy=self._policy, on_progress=progress,
                                       resolver=self._resolver)
            self._update(import_id, entry, bytes_done=result.size, bytes_total=result.size)
            # 2. Inspect (converting a pickle in isolation) and register; the import finishes in the transaction
            #    that adds the checkpoint, so a server whose lease was taken over adds nothing
            name = job.name or result.filename
            check_model_name(name)
            intake = self._checkpoints.intake.inspect_file(path, declared=job.model_type)
            self._checkpoints.register(
                intake, name=name, model_type=job.model_type, allowed_roles=job.allowed_roles,
                created_by=job.user_id, source="import",
                within=SqlImports.succeeding(import_id, token=entry.token, clock=self._clock),
            )
        except (DomainError, FetchError) as exc:
            message = exc.message if isinstance(exc, DomainError) else str(exc)
            prefix = "url refused: " if isinstance(exc, UrlRefused) else ""
            self._finish(import_id, entry, status=ImportStatus.FAILED, error=prefix + message)
        finally:
            self._checkpoints.intake.discard(intake)
            with contextlib.suppress(OSError):
                path.unlink()
