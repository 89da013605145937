"""Model imports from a URL: an SSRF-safe download in a background thread, with progress in the database."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

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
from sdfleet.store.checkpoints import CheckpointRepository
from sdfleet.store.database import Database

log = logging.getLogger("sdfleet.registry.imports")

RESTART_REASON = "the server restarted while this import was running; start it again"
#: progress is written at most this often (seconds)
PROGRESS_INTERVAL_S = 0.5


@dataclass(frozen=True)
class ImportRequest:
    """What to fetch and how to register it."""

    url: str
    model_type: str
    name: str | None = None
    allowed_roles: list[str] | None = None


class ImportService:
    """Creates import jobs and runs them on a small bounded thread pool inside the API process."""

    def __init__(
        self, *, database: Database, checkpoints: CheckpointService, policy: FetchPolicy,
        clock: Callable[[], datetime], max_workers: int = 2, resolver: Resolver | None = None,
    ) -> None:
        self._db = database
        self._checkpoints = checkpoints
        self._policy = policy
        self._clock = clock
        self._max_workers = max_workers
        self._resolver = resolver
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def recover(self) -> int:
        """On start: imports left queued or running by a previous process fail with a clear reason."""
        with self._db.session(write_lock=True) as s:
            return CheckpointRepository(s).fail_unfinished_imports(reason=RESTART_REASON, now=self._clock())

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
        with self._db.session(write_lock=True) as s:
            job = CheckpointRepository(s).add_import(job)
        self._executor().submit(self._run, job.id)
        return job

    def get(self, principal: Principal, import_id: str) -> ImportJob:
        """One import of the caller's, with its progress."""
        def fetch(record_id: str) -> ImportJob | None:
            with self._db.session() as s:
                return CheckpointRepository(s).get_import(record_id)

        return fetch_owned(principal, Permission.CHECKPOINT_ALL, import_id, fetch=fetch, what="import")

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

    def _update(self, import_id: str, **values) -> None:
        with self._db.session(write_lock=True) as s:
            CheckpointRepository(s).update_import(import_id, now=self._clock(), **values)

    def _run(self, import_id: str) -> None:
        with self._db.session() as s:
            job = CheckpointRepository(s).get_import(import_id)
        if job is None or job.status is not ImportStatus.QUEUED:
            return
        self._update(import_id, status=ImportStatus.RUNNING)
        path = self._checkpoints.intake.scratch_file(".download")
        intake = None
        try:
            # 1. Download, writing progress now and then
            last = [0.0]

            def progress(done: int, total: int | None) -> None:
                now = time.monotonic()
                if now - last[0] >= PROGRESS_INTERVAL_S:
                    last[0] = now
                    self._update(import_id, bytes_done=done, bytes_total=total)

            with path.open("wb") as dest:
                result = fetch_to_file(job.url, dest, policy=self._policy, on_progress=progress,
                                       resolver=self._resolver)
            self._update(import_id, bytes_done=result.size, bytes_total=result.size)
            # 2. Inspect (converting a pickle in isolation) and register
            name = job.name or result.filename
            check_model_name(name)
            intake = self._checkpoints.intake.inspect_file(path, declared=job.model_type)
            checkpoint = self._checkpoints.register(
                intake, name=name, model_type=job.model_type, allowed_roles=job.allowed_roles,
                created_by=job.user_id, source="import",
            )
            self._update(import_id, status=ImportStatus.SUCCEEDED, checkpoint_id=checkpoint.id)
        except (DomainError, FetchError) as exc:
            message = exc.message if isinstance(exc, DomainError) else str(exc)
            prefix = "url refused: " if isinstance(exc, UrlRefused) else ""
            self._update(import_id, status=ImportStatus.FAILED, error=prefix + message)
        except Exception:
            log.exception("import %s failed", import_id)
            self._update(import_id, status=ImportStatus.FAILED, error="internal error while importing")
        finally:
            self._checkpoints.intake.discard(intake)
            with contextlib.suppress(OSError):
                path.unlink()
