"""The services one API process uses, built once each by `bootstrap_services` and handed to the app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # types only: the container imports nothing at run time (no cycles, no psycopg on SQLite)
    from sdfleet.objects.base import ObjectStore
    from sdfleet.services.a1111 import A1111Service
    from sdfleet.services.audit import AuditLog
    from sdfleet.services.auth import AuthService
    from sdfleet.services.checkpoints import CheckpointService
    from sdfleet.services.comfy import ComfyService
    from sdfleet.services.comfy_templates import ComfyTemplates
    from sdfleet.services.comfy_userdata import ComfyUserDataService
    from sdfleet.services.datasets import DatasetService
    from sdfleet.services.endpoints import EndpointService
    from sdfleet.services.gallery import GalleryService
    from sdfleet.services.generation_options import GenerationOptions
    from sdfleet.services.graphs import GraphTools
    from sdfleet.services.health import HealthService
    from sdfleet.services.imports import ImportService
    from sdfleet.services.inference import InferenceService
    from sdfleet.services.job_media import JobMedia
    from sdfleet.services.metrics import FleetMetrics
    from sdfleet.services.model_notes import ModelNotesService
    from sdfleet.services.notification_delivery import DeliveryWorker
    from sdfleet.services.notifications import NotificationService
    from sdfleet.services.notifier import Notifier
    from sdfleet.services.preferences import PreferencesService
    from sdfleet.services.queue_view import QueueViewService
    from sdfleet.services.roles import RoleService
    from sdfleet.services.socket_cap import SocketCap
    from sdfleet.services.styles import PresetService, StyleService
    from sdfleet.services.training_worker import TrainingWorkerService
    from sdfleet.services.trainings import TrainingService
    from sdfleet.services.uploads import UploadService
    from sdfleet.services.users import UserService
    from sdfleet.services.workers import WorkerService
    from sdfleet.services.workflows import WorkflowService
    from sdfleet.store.pg_notify import PgNotifyBridge


@dataclass(frozen=True, kw_only=True)
class Services:
    """Every service the HTTP layer may call, and the two background tasks they come with."""

    # Accounts and security
    auth: AuthService
    users: UserService
    roles: RoleService
    audit: AuditLog
    health: HealthService
    metrics: FleetMetrics  # GET /metrics (Prometheus)
    # Files and models
    objects: ObjectStore  # signed local downloads
    checkpoints: CheckpointService  # the model registry
    uploads: UploadService
    imports: ImportService
    model_notes: ModelNotesService  # trigger words, notes, previews of models
    # Jobs
    inference: InferenceService
    workers: WorkerService
    endpoints: EndpointService  # endpoints, replicas, autoscaler events
    notifier: Notifier  # long polls, event streams
    graphs: GraphTools  # the engine's node registry, torch-free
    datasets: DatasetService
    trainings: TrainingService  # LoRA training jobs, owner side
    training_worker: TrainingWorkerService  # LoRA training jobs, worker side
    # Adapters
    a1111: A1111Service  # /sdapi/v1
    comfy: ComfyService  # ComfyUI's server API
    comfy_userdata: ComfyUserDataService  # per-user ComfyUI settings, saved workflows
    comfy_templates: ComfyTemplates  # sdfleet's templates in the ComfyUI frontend
    workflows: WorkflowService  # published workflows
    socket_cap: SocketCap  # ComfyUI WebSockets per user, across both listeners
    # Web UI
    generation: GenerationOptions  # sampler names and field limits for forms
    job_media: JobMedia  # thumbnails, a job's input images
    preferences: PreferencesService  # theme and remembered form values
    styles: StyleService  # prompt styles: a user's own and the team's
    presets: PresetService  # saved generate-form values
    gallery: GalleryService  # search, stars, boards, bulk zip/delete, team browsing
    queue_view: QueueViewService  # places in line; everyone's jobs for queue:all
    # Notifications
    notifications: NotificationService  # e-mail addresses, webhooks, delivery log
    notification_worker: DeliveryWorker  # background: sends the outbox
    fanout: PgNotifyBridge | None  # background: LISTEN/NOTIFY between API servers (PostgreSQL only)
    public_url: str
