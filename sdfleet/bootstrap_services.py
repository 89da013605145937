"""Composition of the API process's services (part of the composition root): settings, database and object store →
every service, each built once, in the order they depend on each other. Nothing is changed after construction."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from sdfleet.bootstrap_notifications import build_notifications
from sdfleet.jobs.live import LIVE_TOPIC, LiveJobQueue, LiveProgress
from sdfleet.objects.base import ObjectStore
from sdfleet.services.a1111 import A1111Service, WaitPolicy
from sdfleet.services.audit import AuditLog
from sdfleet.services.auth import AuthService, LoginPolicy
from sdfleet.services.checkpoints import CheckpointService
from sdfleet.services.comfy import ComfyService
from sdfleet.services.comfy_apps import ComfyApps
from sdfleet.services.comfy_templates import ComfyTemplates
from sdfleet.services.comfy_userdata import ComfyUserDataService
from sdfleet.services.container import Services
from sdfleet.services.credentials import HashingCost, PasswordHasher
from sdfleet.services.dataset_intake import IntakeLimits
from sdfleet.services.datasets import DatasetService
from sdfleet.services.endpoints import EndpointRouting, EndpointService
from sdfleet.services.gallery import GalleryService
from sdfleet.services.generation_options import GenerationOptions
from sdfleet.services.graphs import GraphTools
from sdfleet.services.health import HealthService
from sdfleet.services.imports import ImportService
from sdfleet.services.inference import InferenceLimits, InferenceService
from sdfleet.services.job_media import JobMedia
from sdfleet.services.login_limiter import LoginLimiter, LoginLimits
from sdfleet.services.metrics import FleetMetrics
from sdfleet.services.model_intake import ModelIntake
from sdfleet.services.model_notes import ModelNotesService
from sdfleet.services.notifier import Notifier, PreviewStore, job_topic
from sdfleet.services.preferences import PreferencesService
from sdfleet.services.queue_view import QueueViewService
from sdfleet.services.roles import RoleService
from sdfleet.services.socket_cap import SocketCap
from sdfleet.services.styles import PresetService, StyleService
from sdfleet.services.training_worker import TrainingWorkerService
from sdfleet.services.trainings import TrainingLimits, TrainingPins, TrainingService
from sdfleet.services.uploads import UploadPolicy, UploadService
from sdfleet.services.url_fetch import FetchPolicy
from sdfleet.services.user_options import UserOptionsService
from sdfleet.services.users import UserService
from sdfleet.services.workers import WorkerService
from sdfleet.services.workflows import WorkflowService
from sdfleet.settings import Settings
from sdfleet.store.accounts import SqlAccounts
from sdfleet.store.audit import SqlAuditLog
from sdfleet.store.checkpoints import SqlCheckpoints, SqlUploads
from sdfleet.store.comfy import SqlComfyUserData
from sdfleet.store.database import Database
from sdfleet.store.datasets import SqlDatasets
from sdfleet.store.endpoints import SqlEndpointStore
from sdfleet.store.fleet_stats import SqlFleetStats
from sdfleet.store.gallery import SqlGallery
from sdfleet.store.imports import SqlImports
from sdfleet.store.jobs import SqlJobQueue
from sdfleet.store.login_failures import SqlLoginFailures
from sdfleet.store.model_notes import SqlModelNotes
from sdfleet.store.styles import SqlPresetStore, SqlStyleStore
from sdfleet.store.types import utcnow
from sdfleet.store.user_options import SqlUserOptions
from sdfleet.store.workers import SqlWorkerRegistry
from sdfleet.store.workflows import SqlWorkflowStore

#: why an endpoint may not use `ray` on a server without a Ray cluster (the 422 and a failed endpoint's reason)
RAY_MISSING = "the ray launcher needs SDFLEET_RAY_ADDRESS on the server (and `pip install 'sdfleet[ray]'`)"


def build_services(
    settings: Settings,
    *,
    database: Database,
    objects: ObjectStore,
    clock: Callable[[], datetime] = utcnow,
    hashing: HashingCost | None = None,
    secret_key: bytes | None = None,
) -> Services:
    """Wire every service of the API process, each once."""
    # 1. What several services share: notifications of job changes, the job queue, the worker registry
    # Several API servers share PostgreSQL: wake-ups also travel by LISTEN/NOTIFY. The bridge's listener (started
    # with the app) and live progress deliver to the notifier built right after them.
    fanout = None if database.is_sqlite else _pg_bridge(database, deliver=lambda topic: notifier.wake(topic))
    publish = fanout.publish if fanout is not None else None
    # Progress lives in memory and travels between servers with the notifier's topics: no commit per step.
    live = LiveProgress(publish=publish, on_change=lambda job_id: notifier.wake(job_topic(job_id)))
    notifier = Notifier(publish=publish)
    notifier.on_topic(LIVE_TOPIC, live.receive)
    stored_queue = SqlJobQueue(database, unsaved_progress=live.unsaved)
    queue = LiveJobQueue(stored_queue, live, clock=clock)  # the one queue every service uses
    worker_registry = SqlWorkerRegistry(database)
    previews, graphs = PreviewStore(), GraphTools()

    # 2. Accounts and security (the audit log and the login limiter live in the database, shared by every server)
    audit = AuditLog(store=SqlAuditLog(database), clock=clock)
    limiter = LoginLimiter(store=SqlLoginFailures(database), limits=_login_limits(settings), clock=clock)
    hasher = PasswordHasher(hashing)
    accounts = SqlAccounts(database)
    metrics = FleetMetrics(snapshot=SqlFleetStats(database).snapshot, clock=clock,
                           token=settings.metrics_token.get_secret_value() if settings.metrics_token else None)

    # 3. Endpoints, and who pins a model file or a dataset against deletion
    endpoints = EndpointService(store=SqlEndpointStore(database), queue=queue, workers=worker_registry, clock=clock, audit=audit,
                                lost_after_seconds=max(60.0, settings.lease_seconds * 3),
                                launchers={"local": None, "ray": None if settings.ray_address else RAY_MISSING})
    router = EndpointRouting(endpoints)
    training_pins = TrainingPins(queue)

    # 4. The model registry: checkpoints, resumable uploads, URL imports; per-user options (A1111's, whose
    #    `sd_model_checkpoint` is also the native API's per-user default model)
    intake = ModelIntake(objects=objects, scratch_dir=settings.data_dir / "tmp" / "registry")
    checkpoints = CheckpointService(store=SqlCheckpoints(database), objects=objects, intake=intake, clock=clock, audit=audit,
                                    pinned_by=[endpoints.pinned_by, training_pins.checkpoints_pinned])
    uploads = UploadService(store=SqlUploads(database), objects=objects, checkpoints=checkpoints, clock=clock,
                            policy=_upload_policy(settings))
    imports = ImportService(store=SqlImports(database), checkpoints=checkpoints, policy=_fetch_policy(settings), clock=clock,
                            max_workers=settings.import_max_workers, lease_seconds=settings.lease_seconds)
    user_options_store = SqlUserOptions(database)
    user_options = UserOptionsService(store=user_options_store, models=checkpoints, clock=clock)

    # 5. Notifications: the user-facing service and its delivery worker
    notifications, notification_worker = build_notifications(
        settings, database=database, objects=objects, secret_key=secret_key or secrets.token_bytes(32), clock=clock,
        endpoint_names=lambda: [e.name for e in endpoints.store.list()])

    # 6. Jobs: inference (owner and worker sides), datasets and trainings
    inference = InferenceService(queue=queue, objects=objects, catalog=checkpoints, graphs=graphs, router=router,
                                 notifier=notifier, previews=previews, limits=_inference_limits(settings),
                                 clock=clock, check_webhook=notifications.check_url,
                                 default_checkpoint_for=user_options.preferred_checkpoint)
    workers = WorkerService(queue=queue, registry=worker_registry, objects=objects, blob_key=checkpoints.blob_key,
                            notifier=notifier, previews=previews, lease_seconds=settings.lease_seconds, clock=clock,
                            max_running_per_user=settings.max_running_per_user, on_finished=metrics.job_finished,
                            on_models_loaded=metrics.models_loaded,
                            queued_endpoints=stored_queue.queued_endpoints, max_output_pixels=settings.max_output_pixels)
    datasets = DatasetService(store=SqlDatasets(database), objects=objects, clock=clock, pinned_by=[training_pins.datasets_pinned],
                              limits=IntakeLimits(max_archive_bytes=settings.max_dataset_upload_bytes * 4,
                                                  max_image_pixels=settings.max_image_pixels))
    trainings = TrainingService(queue=queue, objects=objects, checkpoints=checkpoints, datasets=datasets,
                                router=router, endpoint_devices=_endpoint_devices(endpoints), notifier=notifier,
                                clock=clock, limits=TrainingLimits(max_queued_per_user=settings.max_queued_per_user,
                                                                   max_attempts=settings.max_attempts))
    training_worker = TrainingWorkerService(queue=queue, objects=objects, checkpoints=checkpoints, workers=workers,
                                            clock=clock)

    # 7. Adapters: A1111's /sdapi/v1, ComfyUI's server API and data, published workflows
    styles = StyleService(store=SqlStyleStore(database), clock=clock)
    workflows = WorkflowService(store=SqlWorkflowStore(database), graphs=graphs, catalog=checkpoints,
                                inference=inference, clock=clock, audit=audit)
    a1111 = A1111Service(inference=inference, options=user_options, notifier=notifier, workers=worker_registry.list,
                         clock=clock, max_image_pixels=settings.max_image_pixels, styles=styles,
                         wait=WaitPolicy(timeout_seconds=settings.a1111_wait_seconds))
    comfy = ComfyService(inference=inference, catalog=checkpoints, graphs=graphs, notifier=notifier, objects=objects,
                         devices=worker_registry.list, clock=clock,
                         max_image_pixels=settings.max_image_pixels, workflows=workflows)

    # 8. The web UI: gallery and queue views, job thumbnails and inputs, preferences, presets, model notes
    gallery_store = SqlGallery(database)
    gallery = GalleryService(store=gallery_store, objects=objects, delete_job=inference.delete, clock=clock)

    return Services(
        auth=AuthService(accounts=accounts, hasher=hasher, limiter=limiter, audit=audit, clock=clock,
                         policy=LoginPolicy(session_ttl=timedelta(seconds=settings.session_ttl_seconds))),
        users=UserService(accounts=accounts, hasher=hasher, limiter=limiter, audit=audit, clock=clock,
                          objects=objects),
        roles=RoleService(accounts=accounts, audit=audit, clock=clock),
        audit=audit,
        health=HealthService({"database": database.check, "objects": objects.check}),
        metrics=metrics,
        objects=objects,
        checkpoints=checkpoints,
        uploads=uploads,
        imports=imports,
        model_notes=ModelNotesService(store=SqlModelNotes(database), checkpoints=checkpoints, objects=objects,
                                      find_job=gallery.viewable, clock=clock),
        inference=inference,
        workers=workers,
        endpoints=endpoints,
        notifier=notifier,
        graphs=graphs,
        datasets=datasets,
        trainings=trainings,
        training_worker=training_worker,
        a1111=a1111,
        comfy=comfy,
        comfy_userdata=ComfyUserDataService(store=SqlComfyUserData(database), clock=clock,
                                            apps=ComfyApps(workflows=workflows, graphs=graphs)),
        comfy_templates=ComfyTemplates(checkpoints=checkpoints, workflows=workflows),
        workflows=workflows,
        socket_cap=SocketCap(per_user=settings.comfy_sockets_per_user),
        generation=GenerationOptions(max_work_per_request=settings.max_work_per_request,
                                     max_queued_per_user=settings.max_queued_per_user),
        job_media=JobMedia(objects=objects, find_job=gallery.viewable),
        preferences=PreferencesService(store=user_options_store, clock=clock),
        styles=styles,
        presets=PresetService(store=SqlPresetStore(database), clock=clock),
        gallery=gallery,
        queue_view=QueueViewService(store=gallery_store, cancel_job=lambda job_id, now: queue.cancel(job_id, now=now),
                                    notify=notifier.notify, clock=clock),
        notifications=notifications,
        notification_worker=notification_worker,
        fanout=fanout,
        public_url=settings.resolved_public_url(),
    )


# Settings → the policies and limits services take (only the composition root reads settings)

def _login_limits(settings: Settings) -> LoginLimits:
    return LoginLimits(per_client=settings.login_attempts_per_user, per_address=settings.login_attempts_per_address,
                       per_user=settings.login_user_backoff_after,
                       window=timedelta(seconds=settings.login_window_seconds))


def _upload_policy(settings: Settings) -> UploadPolicy:
    return UploadPolicy(part_size=settings.upload_part_size, max_bytes=settings.max_model_bytes,
                        expiry=timedelta(seconds=settings.upload_expiry_seconds))


def _fetch_policy(settings: Settings) -> FetchPolicy:
    return FetchPolicy(allowed_hosts=frozenset(settings.import_allowed_hosts), max_bytes=settings.max_model_bytes,
                       connect_timeout=10.0, read_timeout=60.0, total_timeout=float(settings.import_timeout_seconds))


def _inference_limits(settings: Settings) -> InferenceLimits:
    return InferenceLimits(max_queued_per_user=settings.max_queued_per_user,
                           max_work_per_request=settings.max_work_per_request, max_attempts=settings.max_attempts,
                           max_image_pixels=settings.max_image_pixels)


# Small adapters between services

def _pg_bridge(database: Database, *, deliver: Callable[[str], None]):
    """The LISTEN/NOTIFY bridge of a PostgreSQL database (psycopg is imported only then)."""
    from sdfleet.store.pg_notify import PgNotifyBridge

    return PgNotifyBridge(database.url, deliver=deliver)


def _endpoint_devices(endpoints: EndpointService) -> Callable[[str], tuple[str, ...]]:
    """An endpoint's configured devices by name (trainings judge `AdamW8bit` from them)."""
    def devices(name: str) -> tuple[str, ...]:
        endpoint = endpoints.store.get(name)
        return endpoint.config.devices if endpoint is not None else ()
    return devices
