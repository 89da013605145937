"""Composition root: settings → database, object store → services → app (or worker)."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from fastapi import FastAPI

from sdfleet.api.app import create_app
from sdfleet.bootstrap_notifications import build_notifications, smtp_config
from sdfleet.fleet.launcher import RoutingLauncher
from sdfleet.services.auth import AuthService, LoginPolicy
from sdfleet.services.container import Services
from sdfleet.services.credentials import HashingCost, PasswordHasher, generate_password
from sdfleet.services.health import HealthService
from sdfleet.services.roles import RoleService
from sdfleet.services.socket_cap import SocketCap
from sdfleet.services.users import UserService
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
    objects: object
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


def open_objects(settings: Settings, *, secret_key: bytes):
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


def build_registry(settings: Settings, *, database: Database, objects, clock: Callable[[], datetime], audit=None):
    """The model registry's services: checkpoints, resumable uploads, URL imports."""
    from sdfleet.services.checkpoints import CheckpointService
    from sdfleet.services.imports import ImportService
    from sdfleet.services.model_intake import ModelIntake
    from sdfleet.services.uploads import UploadPolicy, UploadService
    from sdfleet.services.url_fetch import FetchPolicy

    intake = ModelIntake(objects=objects, scratch_dir=settings.data_dir / "tmp" / "registry")
    checkpoints = CheckpointService(database=database, objects=objects, intake=intake, clock=clock, audit=audit)
    upload_policy = UploadPolicy(
        part_size=settings.upload_part_size,
        expiry=timedelta(seconds=settings.upload_expiry_seconds),
        max_bytes=settings.max_model_bytes,
    )
    uploads = UploadService(
        database=database, objects=objects, checkpoints=checkpoints, clock=clock, policy=upload_policy
    )
    fetch_policy = FetchPolicy(
        allowed_hosts=frozenset(settings.import_allowed_hosts),
        max_bytes=settings.max_model_bytes,
        connect_timeout=10.0,
        read_timeout=60.0,
        total_timeout=float(settings.import_timeout_seconds),
    )
    imports = ImportService(
        database=database, checkpoints=checkpoints, policy=fetch_policy, clock=clock,
        max_workers=settings.import_max_workers, lease_seconds=settings.lease_seconds,
    )
    return checkpoints, uploads, imports


def build_datasets(settings: Settings, *, database: Database, objects, clock: Callable[[], datetime]):
    """Training datasets."""
    from sdfleet.services.dataset_intake import IntakeLimits
    from sdfleet.services.datasets import DatasetService

    limits = IntakeLimits(max_archive_bytes=settings.max_dataset_upload_bytes * 4,
                          max_image_pixels=settings.max_image_pixels)
    return DatasetService(database=database, objects=objects, clock=clock, limits=limits)


def build_trainings(settings: Settings, *, database: Database, objects, checkpoints, datasets, endpoints, workers,
                    notifier, clock: Callable[[], datetime], queue=None):
    """LoRA training jobs: the owner side and the worker side; trainings pin their datasets and base models."""
    from sdfleet.services.endpoints import EndpointRouting
    from sdfleet.services.training_worker import TrainingWorkerService
    from sdfleet.services.trainings import TrainingLimits, TrainingService
    from sdfleet.store.jobs import SqlJobQueue

    queue = queue or SqlJobQueue(database)  # the workers' queue: a training's progress is live like any job's

    def devices(name: str) -> tuple[str, ...]:
        endpoint = endpoints.store.get(name)
        return endpoint.config.devices if endpoint is not None else ()

    trainings = TrainingService(queue=queue, objects=objects, checkpoints=checkpoints, datasets=datasets,
                                router=EndpointRouting(endpoints), endpoint_devices=devices, notifier=notifier,
                                clock=clock, limits=TrainingLimits(max_queued_per_user=settings.max_queued_per_user,
                                                                   max_attempts=settings.max_attempts))
    datasets.pinned_by.append(trainings.datasets_pinned)
    checkpoints.pinned_by.append(trainings.checkpoints_pinned)
    worker_side = TrainingWorkerService(queue=queue, objects=objects, checkpoints=checkpoints, workers=workers,
                                        clock=clock)
    return trainings, worker_side


def build_user_options(*, database: Database, checkpoints, clock: Callable[[], datetime]):
    """Per-user A1111 options; their `sd_model_checkpoint` is also the native API's per-user default model."""
    from sdfleet.services.user_options import UserOptionsService
    from sdfleet.store.user_options import SqlUserOptions

    return UserOptionsService(store=SqlUserOptions(database), models=checkpoints, clock=clock)


def build_a1111(*, database: Database, checkpoints, inference, notifier, clock: Callable[[], datetime],
                max_image_pixels: int, wait_seconds: float = 3600.0):
    """The A1111 adapter behind /sdapi/v1."""
    from sdfleet.services.a1111 import A1111Service, WaitPolicy
    from sdfleet.services.styles import StyleService
    from sdfleet.store.styles import SqlStyleStore
    from sdfleet.store.workers import SqlWorkerRegistry

    options = build_user_options(database=database, checkpoints=checkpoints, clock=clock)
    return A1111Service(inference=inference, options=options, notifier=notifier,
                        workers=SqlWorkerRegistry(database).list, clock=clock, max_image_pixels=max_image_pixels,
                        styles=StyleService(store=SqlStyleStore(database), clock=clock),
                        wait=WaitPolicy(timeout_seconds=wait_seconds))


def build_endpoints(settings: Settings, *, database: Database, checkpoints, clock: Callable[[], datetime],
                    audit=None):
    """Endpoints (CRUD, replicas, events); their `preload` pins models in the registry."""
    from sdfleet.services.endpoints import EndpointService
    from sdfleet.store.jobs import SqlJobQueue
    from sdfleet.store.workers import SqlWorkerRegistry

    endpoints = EndpointService(database=database, queue=SqlJobQueue(database), workers=SqlWorkerRegistry(database),
                                clock=clock, lost_after_seconds=max(60.0, settings.lease_seconds * 3), audit=audit,
                                launchers={"local": None, "ray": None if settings.ray_address else RAY_MISSING})
    checkpoints.pinned_by.append(endpoints.pinned_by)
    return endpoints


def build_jobs(settings: Settings, *, database: Database, objects, checkpoints, clock: Callable[[], datetime],
               endpoints=None, check_webhook=None, metrics=None):
    """Inference jobs: the queue, the owner-side and worker-side services."""
    from sdfleet.jobs.live import LIVE_TOPIC, LiveJobQueue, LiveProgress
    from sdfleet.services.endpoints import EndpointRouting
    from sdfleet.services.graphs import GraphTools
    from sdfleet.services.inference import InferenceLimits, InferenceService
    from sdfleet.services.notifier import Notifier, PreviewStore, job_topic
    from sdfleet.services.workers import WorkerService
    from sdfleet.store.jobs import SqlJobQueue
    from sdfleet.store.workers import SqlWorkerRegistry

    notifier, previews, graphs = Notifier(), PreviewStore(), GraphTools()
    # Progress lives in memory and travels between servers with the notifier's topics: no commit per step.
    live = LiveProgress(publish=lambda topic: notifier.publish(topic) if notifier.publish else None,
                        on_change=lambda job_id: notifier.wake(job_topic(job_id)))
    notifier.on_topic(LIVE_TOPIC, live.receive)
    stored = SqlJobQueue(database, unsaved_progress=live.unsaved)
    queue = LiveJobQueue(stored, live, clock=clock)
    registry = SqlWorkerRegistry(database)
    endpoints = endpoints or build_endpoints(settings, database=database, checkpoints=checkpoints, clock=clock)
    limits = InferenceLimits(max_queued_per_user=settings.max_queued_per_user,
                             max_work_per_request=settings.max_work_per_request, max_attempts=settings.max_attempts,
                             max_image_pixels=settings.max_image_pixels)
    inference = InferenceService(queue=queue, objects=objects, catalog=checkpoints, graphs=graphs,
                                 router=EndpointRouting(endpoints), notifier=notifier, previews=previews,
                                 limits=limits, clock=clock, check_webhook=check_webhook,
                                 default_checkpoint_for=build_user_options(
                                     database=database, checkpoints=checkpoints, clock=clock).preferred_checkpoint)
    workers = WorkerService(queue=queue, registry=registry, objects=objects,
                            blob_key=checkpoints.blob_key, notifier=notifier, previews=previews,
                            lease_seconds=settings.lease_seconds, clock=clock,
                            max_running_per_user=settings.max_running_per_user,
                            on_finished=metrics.job_finished if metrics else None,
                            queued_endpoints=stored.queued_endpoints)
    return inference, workers, notifier, graphs


def build_comfy(*, database: Database, objects, checkpoints, inference, graphs, notifier,
                clock: Callable[[], datetime], max_image_pixels: int, audit=None) -> dict:
    """ComfyUI's server API, per-user ComfyUI data, sdfleet's templates and published workflows."""
    from sdfleet.services.comfy import ComfyService
    from sdfleet.services.comfy_apps import ComfyApps
    from sdfleet.services.comfy_templates import ComfyTemplates
    from sdfleet.services.comfy_userdata import ComfyUserDataService
    from sdfleet.services.workflows import WorkflowService
    from sdfleet.store.comfy import SqlComfyUserData
    from sdfleet.store.workers import SqlWorkerRegistry
    from sdfleet.store.workflows import SqlWorkflowStore

    registry = SqlWorkerRegistry(database)

    def devices() -> list[dict]:
        return [{"name": f"{w.name} ({w.device or 'unknown'})", "type": (w.device or "cpu").split(":")[0]}
                for w in registry.list() if w.revoked_at is None and w.status != "gone"]

    workflows = WorkflowService(store=SqlWorkflowStore(database), graphs=graphs, catalog=checkpoints,
                                inference=inference, clock=clock, audit=audit)
    return {
        "comfy": ComfyService(inference=inference, catalog=checkpoints, graphs=graphs, notifier=notifier,
                              objects=objects, devices=devices, clock=clock, max_image_pixels=max_image_pixels,
                              workflows=workflows),
        "comfy_userdata": ComfyUserDataService(store=SqlComfyUserData(database), clock=clock,
                                               apps=ComfyApps(workflows=workflows, graphs=graphs)),
        "comfy_templates": ComfyTemplates(checkpoints=checkpoints, workflows=workflows),
        "workflows": workflows,
    }


def build_web(settings: Settings, *, database: Database, objects, inference, notifier, checkpoints,
              clock: Callable[[], datetime]) -> dict:
    """What the web UI adds: form options, gallery and queue views, job thumbnails and inputs, preferences,
    styles and presets."""
    from sdfleet.services.gallery import GalleryService
    from sdfleet.services.generation_options import GenerationOptions
    from sdfleet.services.job_media import JobMedia
    from sdfleet.services.model_notes import ModelNotesService
    from sdfleet.services.preferences import PreferencesService
    from sdfleet.services.queue_view import QueueViewService
    from sdfleet.services.styles import PresetService, StyleService
    from sdfleet.store.gallery import SqlGallery
    from sdfleet.store.jobs import SqlJobQueue
    from sdfleet.store.model_notes import SqlModelNotes
    from sdfleet.store.styles import SqlPresetStore, SqlStyleStore
    from sdfleet.store.user_options import SqlUserOptions

    store, queue = SqlGallery(database), SqlJobQueue(database)
    gallery = GalleryService(store=store, objects=objects, delete_job=inference.delete, clock=clock)
    return {
        "gallery": gallery,
        "queue_view": QueueViewService(store=store, cancel_job=lambda job_id, now: queue.cancel(job_id, now=now),
                                       notify=notifier.notify, clock=clock),
        "styles": StyleService(store=SqlStyleStore(database), clock=clock),
        "presets": PresetService(store=SqlPresetStore(database), clock=clock),
        "preferences": PreferencesService(store=SqlUserOptions(database), clock=clock),
        "generation": GenerationOptions(max_work_per_request=settings.max_work_per_request,
                                        max_queued_per_user=settings.max_queued_per_user),
        "job_media": JobMedia(objects=objects, find_job=gallery.viewable),
        "model_notes": ModelNotesService(store=SqlModelNotes(database), checkpoints=checkpoints, objects=objects,
                                         find_job=gallery.viewable, clock=clock),
    }


def build_metrics(settings: Settings, *, database: Database, clock: Callable[[], datetime]):
    """The Prometheus registry of this server: fleet gauges from the database, this process's histograms."""
    from sdfleet.services.metrics import FleetMetrics
    from sdfleet.store.fleet_stats import SqlFleetStats

    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    return FleetMetrics(snapshot=SqlFleetStats(database).snapshot, token=token, clock=clock)


def build_security(settings: Settings, *, database: Database, clock: Callable[[], datetime]):
    """The audit log and the login limiter, both in the database (shared by every API server)."""
    from sdfleet.services.audit import AuditLog
    from sdfleet.services.login_limiter import LoginLimiter, LoginLimits
    from sdfleet.store.audit import SqlAuditLog
    from sdfleet.store.login_failures import SqlLoginFailures

    audit = AuditLog(store=SqlAuditLog(database), clock=clock, in_transaction=database.in_session)
    limits = LoginLimits(per_client=settings.login_attempts_per_user, per_address=settings.login_attempts_per_address,
                         per_user=settings.login_user_backoff_after,
                         window=timedelta(seconds=settings.login_window_seconds))
    return audit, LoginLimiter(store=SqlLoginFailures(database), limits=limits, clock=clock)


def build_services(
    settings: Settings,
    *,
    database: Database,
    objects,
    clock: Callable[[], datetime] = utcnow,
    hashing: HashingCost | None = None,
    secret_key: bytes | None = None,
) -> Services:
    """Wire every service of the API process."""
    hasher = PasswordHasher(hashing)
    policy = LoginPolicy(session_ttl=timedelta(seconds=settings.session_ttl_seconds))
    audit, limiter = build_security(settings, database=database, clock=clock)
    checkpoints, uploads, imports = build_registry(settings, database=database, objects=objects, clock=clock,
                                                   audit=audit)
    endpoints = build_endpoints(settings, database=database, checkpoints=checkpoints, clock=clock, audit=audit)
    notifications, delivery_worker = build_notifications(
        settings, database=database, objects=objects, secret_key=secret_key or secrets.token_bytes(32), clock=clock,
        endpoint_names=lambda: [e.name for e in endpoints.store.list()])
    metrics = build_metrics(settings, database=database, clock=clock)
    inference, workers, notifier, graphs = build_jobs(settings, database=database, objects=objects,
                                                      checkpoints=checkpoints, clock=clock, endpoints=endpoints,
                                                      check_webhook=notifications.check_url, metrics=metrics)
    datasets = build_datasets(settings, database=database, objects=objects, clock=clock)
    trainings, training_worker = build_trainings(settings, database=database, objects=objects,
                                                 checkpoints=checkpoints, datasets=datasets, endpoints=endpoints,
                                                 workers=workers, notifier=notifier, clock=clock,
                                                 queue=workers.queue)
    return Services(
        inference=inference,
        trainings=trainings,
        training_worker=training_worker,
        workers=workers,
        endpoints=endpoints,
        notifier=notifier,
        graphs=graphs,
        **build_web(settings, database=database, objects=objects, inference=inference, notifier=notifier,
                    checkpoints=checkpoints, clock=clock),
        **build_comfy(database=database, objects=objects, checkpoints=checkpoints, inference=inference,
                      graphs=graphs, notifier=notifier, clock=clock, max_image_pixels=settings.max_image_pixels,
                      audit=audit),
        a1111=build_a1111(database=database, checkpoints=checkpoints, inference=inference, notifier=notifier,
                          clock=clock, max_image_pixels=settings.max_image_pixels,
                          wait_seconds=settings.a1111_wait_seconds),
        checkpoints=checkpoints,
        datasets=datasets,
        uploads=uploads,
        imports=imports,
        auth=AuthService(database=database, hasher=hasher, policy=policy, limiter=limiter, audit=audit, clock=clock),
        users=UserService(database=database, hasher=hasher, limiter=limiter, audit=audit, clock=clock,
                          objects=objects),
        roles=RoleService(database=database, audit=audit, clock=clock),
        audit=audit,
        socket_cap=SocketCap(per_user=settings.comfy_sockets_per_user),
        metrics=metrics,
        health=HealthService({"database": database.check, "objects": objects.check}),
        objects=objects,
        notifications=notifications,
        public_url=settings.resolved_public_url(),
        extra={"notification_worker": delivery_worker},
    )


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


#: why an endpoint may not use `ray` on a server without a Ray cluster (the 422 and a failed endpoint's reason)
RAY_MISSING = "the ray launcher needs SDFLEET_RAY_ADDRESS on the server (and `pip install 'sdfleet[ray]'`)"


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
    from sdfleet.fleet.manager import FleetManager
    from sdfleet.fleet.reaper import LeaseReaper
    from sdfleet.objects.local import LocalObjectStore
    from sdfleet.services.model_intake import MODEL_BLOBS

    settings, services = runtime.settings, runtime.services
    background: list = [LeaseReaper(services.workers.reap, interval=max(0.5, settings.lease_seconds / 3)),
                        # URL imports: renew this server's leases, take over those of servers that stopped
                        LeaseReaper(services.imports.tick, interval=services.imports.tick_interval),
                        services.extra["notification_worker"]]
    if not runtime.database.is_sqlite:
        # Several API servers share PostgreSQL: progress and queue wake-ups travel by LISTEN/NOTIFY.
        from sdfleet.store.pg_notify import PgNotifyBridge

        bridge = PgNotifyBridge(runtime.database.url, deliver=services.notifier.wake)
        services.notifier.publish = bridge.publish
        background.insert(0, bridge)
    count = settings.local_workers if local_workers is None else local_workers
    # `local_workers` becomes the `default` endpoint's replica count on first start (0: none are started).
    services.endpoints.ensure_default(replicas=count, device=settings.worker_device)

    def register(name: str, endpoint: str) -> tuple[str, str]:
        issued = services.workers.register(name=name, endpoint=endpoint)
        return issued.worker.id, issued.token

    worker_env = {"SDFLEET_MAX_IMAGE_PIXELS": str(settings.max_image_pixels)}
    if settings.worker_threads:
        worker_env["SDFLEET_WORKER_THREADS"] = str(settings.worker_threads)
    if isinstance(runtime.objects, LocalObjectStore):
        # Replicas on this host hard-link model blobs from the local object store instead of copying them.
        worker_env["SDFLEET_WORKER_LINK_MODELS_FROM"] = str(runtime.objects.root / MODEL_BLOBS)
    manager = FleetManager(
        endpoints=services.endpoints, register=register, revoke=services.workers.revoke,
        launcher=_launchers(settings, ray_wanted=lambda: any(
            e.config.launcher == "ray" for e in services.endpoints.store.list(include_deleted=False))),
        server_url=server_url or f"http://127.0.0.1:{settings.port}",
        cache_dir=settings.data_dir / "worker-cache", clock=utcnow, interval=0.5, worker_env=worker_env,
        pending_timeout=settings.ray_pending_seconds,
    )
    # An idle manager passes every 10 s; a queued job or an endpoint change brings its next pass forward.
    services.notifier.on_topic("queue:", manager.wake)
    services.endpoints.changed.append(manager.wake)
    background.append(manager)
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
