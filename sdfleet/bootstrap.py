"""Composition root: settings → database, object store → services (`bootstrap_services`) → app (or worker)."""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from sdfleet.api.app import Background, create_app
from sdfleet.bootstrap_notifications import smtp_config
from sdfleet.bootstrap_services import RAY_MISSING, build_services
from sdfleet.fleet.launcher import RoutingLauncher
from sdfleet.objects.base import ObjectStore
from sdfleet.services.container import Services
from sdfleet.services.credentials import HashingCost, generate_password
from sdfleet.settings import Settings
from sdfleet.store import migrate
from sdfleet.store.database import Database, DatabaseUnavailable
from sdfleet.store.types import utcnow


class StartupError(RuntimeError):
    """Configuration or environment that prevents starting; the message is one clear line."""


@dataclass
class Runtime:
    """Everything a running server holds."""

    settings: Settings
    database: Database
    objects: ObjectStore
    services: Services
    secret_key: bytes


def prepare_data_dir(path: Path) -> Path:
    """Create the data dir and prove it is writable."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise StartupError(f"data dir {path} is not writable: {exc.strerror or exc}") from exc
    return path


def load_secret_key(settings: Settings) -> bytes:
    """The configured secret, or one generated once and kept in data_dir/secret_key (mode 0600)."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    path = settings.data_dir / "secret_key"
    if path.exists():
        return path.read_bytes().strip()
    value = secrets.token_urlsafe(48).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(value)
    return value


def open_database(settings: Settings) -> Database:
    """Connect and check the database, failing with one line."""
    try:
        database = Database(settings.resolved_database_url())
        database.check()
    except DatabaseUnavailable as exc:
        raise StartupError(str(exc)) from exc
    except Exception as exc:  # driver import errors, malformed URLs …
        raise StartupError(f"cannot open database: {exc}") from exc
    return database


def open_objects(settings: Settings, *, secret_key: bytes) -> ObjectStore:
    """Open and check the object store, failing with one line."""
    from sdfleet.objects.base import ObjectStoreUnavailable
    from sdfleet.objects.factory import open_object_store

    try:
        store = open_object_store(
            settings.resolved_storage_url(),
            s3_endpoint_url=settings.s3_endpoint_url,
            secret_key=secret_key,
            public_base_url=settings.resolved_public_url(),
        )
        store.check()
    except ObjectStoreUnavailable as exc:
        raise StartupError(str(exc)) from exc
    except ValueError as exc:
        raise StartupError(f"bad SDFLEET_STORAGE_URL: {exc}") from exc
    return store


def start_runtime(settings: Settings, *, hashing: HashingCost | None = None, migrate_db: bool = True) -> Runtime:
    """Check the environment, migrate, and build the services."""
    prepare_data_dir(settings.data_dir)
    secret_key = load_secret_key(settings)
    database = open_database(settings)
    if migrate_db:
        migrate.upgrade(database)
    objects = open_objects(settings, secret_key=secret_key)
    try:
        smtp_config(settings)
    except ValueError as exc:
        raise StartupError(f"bad SDFLEET_SMTP_URL: {exc}") from exc
    services = build_services(settings, database=database, objects=objects, hashing=hashing, secret_key=secret_key)
    services.roles.ensure_builtin()
    return Runtime(settings=settings, database=database, objects=objects, services=services, secret_key=secret_key)


@dataclass(frozen=True)
class AdminBootstrap:
    """The super admin created on first start; `password` is set only when it was generated."""

    username: str
    generated_password: str | None


def ensure_admin(runtime: Runtime) -> AdminBootstrap | None:
    """On first start (no users), create the super admin from settings or with a generated password."""
    settings = runtime.settings
    given = settings.admin_password.get_secret_value() if settings.admin_password else None
    password = given or generate_password()
    user = runtime.services.users.ensure_admin(username=settings.admin_username, password=password)
    if user is None:
        return None
    return AdminBootstrap(username=user.username, generated_password=None if given else password)


def _launchers(settings: Settings, *, ray_wanted: Callable[[], bool]) -> RoutingLauncher:
    """`local` always; `ray` when SDFLEET_RAY_ADDRESS names a cluster (actors in this install's namespace),
    connected (and `ray` imported) only once an endpoint uses it: at start if one exists, else at its first
    replica."""
    from sdfleet.fleet.local_launcher import LocalLauncher

    launchers: dict = {"local": LocalLauncher()}
    if not settings.ray_address:
        return RoutingLauncher(launchers, missing={"ray": RAY_MISSING})
    from sdfleet.fleet.ray_launcher import RayLauncher

    namespace = settings.ray_namespace or "sdfleet-" + hashlib.sha256(
        settings.resolved_database_url().encode()).hexdigest()[:12]
    # Ray replicas run on other machines: they call the server back on its public URL when one is set.
    launchers["ray"] = RayLauncher(address=settings.ray_address, namespace=namespace,
                                   server_url=settings.public_url.rstrip("/") if settings.public_url else None)
    return RoutingLauncher(launchers, on_demand={"ray": ray_wanted})


def build_app(runtime: Runtime, *, local_workers: int | None = None, server_url: str | None = None) -> FastAPI:
    """The HTTP application of a runtime, with its lease reaper and (for `serve`) local workers."""
    from sdfleet.domain.leadership import LeaderFence
    from sdfleet.fleet.leadership import LeaderElected
    from sdfleet.fleet.manager import FleetManager
    from sdfleet.fleet.reaper import LeaseReaper
    from sdfleet.objects.local import LocalObjectStore
    from sdfleet.services.model_intake import MODEL_BLOBS
    from sdfleet.store.leader_leases import SqlLeaderLease

    settings, services = runtime.settings, runtime.services
    background: list[Background] = [LeaseReaper(services.workers.reap, interval=max(0.5, settings.lease_seconds / 3)),
                                    # URL imports: renew this server's leases, take over those of servers that stopped;
                                    # on stop, hand this server's imports back for another to take over at once
                                    LeaseReaper(services.imports.tick, interval=services.imports.tick_interval,
                                                on_stop=services.imports.hand_back),
                                    services.notification_worker]
    if services.fanout is not None:
        background.insert(0, services.fanout)
    count = settings.local_workers if local_workers is None else local_workers
    # `local_workers` becomes the `default` endpoint's replica count on first start (0: none are started).
    services.endpoints.ensure_default(replicas=count, device=settings.worker_device)

    def register(name: str, endpoint: str, fence: LeaderFence | None) -> tuple[str, str]:
        issued = services.workers.register(name=name, endpoint=endpoint, fence=fence)
        return issued.worker.id, issued.token

    worker_env = {"SDFLEET_MAX_IMAGE_PIXELS": str(settings.max_image_pixels)}
    if settings.worker_threads:
        worker_env["SDFLEET_WORKER_THREADS"] = str(settings.worker_threads)
    if isinstance(runtime.objects, LocalObjectStore):
        # Replicas on this host hard-link model blobs from the local object store instead of copying them.
        worker_env["SDFLEET_WORKER_LINK_MODELS_FROM"] = str(runtime.objects.root / MODEL_BLOBS)
    manager_url = server_url or f"http://127.0.0.1:{settings.port}"
    managers: list[FleetManager] = []  #: the one this server runs while it leads (fresh launchers each term)

    def fleet_manager() -> FleetManager:
        manager = FleetManager(
            endpoints=services.endpoints, register=register, revoke=services.workers.revoke,
            launcher=_launchers(settings, ray_wanted=lambda: any(
                e.config.launcher == "ray" for e in services.endpoints.store.list(include_deleted=False))),
            server_url=manager_url, cache_dir=settings.data_dir / "worker-cache", clock=utcnow, interval=0.5,
            worker_env=worker_env, pending_timeout=settings.ray_pending_seconds,
            # the term LeaderElected just won (it builds a manager right after a successful hold): the manager's
            # writes are refused once another server takes the lease over
            fence=lease.fence,
        )
        managers[:] = [manager]
        return manager

    def wake(_topic: str = "") -> None:
        for manager in managers:
            manager.wake()

    # An idle manager passes every 10 s; a queued job or an endpoint change brings its next pass forward.
    services.notifier.on_topic("queue:", wake)
    services.endpoints.changed.append(wake)
    # Several servers on one database: only the holder of the `fleet-manager` lease runs the manager. The
    # holder is named by host and URL, so a restarted server takes its own lease back at once.
    lease = SqlLeaderLease(runtime.database, name="fleet-manager", holder=f"{socket.gethostname()} {manager_url}",
                           clock=utcnow)
    background.append(LeaderElected(lease=lease, factory=fleet_manager, clock=utcnow))
    return create_app(
        services,
        max_request_bytes=settings.max_request_bytes,
        body_limit_exempt=(r"^/api/v1/checkpoints/uploads/[^/]+/parts/", r"^/api/v1/worker/jobs/[^/]+/outputs/",
                           r"^/api/v1/worker/jobs/[^/]+/training/"),
        body_limits=((r"^/api/v1/datasets/[^/]+/images$", settings.max_dataset_upload_bytes),),
        background=background,
        public_url=settings.public_url,
        trusted_proxies=settings.trusted_proxy_networks(),
    )
