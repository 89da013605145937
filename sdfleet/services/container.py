"""The services one API process uses, built by `bootstrap` and handed to the app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sdfleet.services.auth import AuthService
from sdfleet.services.health import HealthService
from sdfleet.services.roles import RoleService
from sdfleet.services.users import UserService


@dataclass
class Services:
    """Every service the HTTP layer may call; later issues add theirs here."""

    auth: AuthService
    users: UserService
    roles: RoleService
    health: HealthService
    objects: Any = None  # the ObjectStore, for signed local downloads
    checkpoints: Any = None  # CheckpointService (model registry)
    uploads: Any = None  # UploadService
    imports: Any = None  # ImportService
    inference: Any = None  # InferenceService
    workers: Any = None  # WorkerService
    notifier: Any = None  # Notifier (long polls, event streams)
    graphs: Any = None  # GraphTools (engine node registry)
    comfy: Any = None  # ComfyService (ComfyUI server API)
    comfy_userdata: Any = None  # ComfyUserDataService (per-user settings, saved workflows)
    comfy_templates: Any = None  # ComfyTemplates (sdfleet's templates in the frontend)
    workflows: Any = None  # WorkflowService (published workflows)
    a1111: Any = None  # A1111Service (/sdapi/v1)
    endpoints: Any = None  # EndpointService (endpoints, replicas, autoscaler events)
    notifications: Any = None  # NotificationService (e-mail addresses, webhooks, delivery log)
    datasets: Any = None  # DatasetService (training datasets)
    trainings: Any = None  # TrainingService (LoRA training jobs, owner side)
    training_worker: Any = None  # TrainingWorkerService (LoRA training jobs, worker side)
    generation: Any = None  # GenerationOptions (sampler names and field limits for forms)
    job_media: Any = None  # JobMedia (thumbnails, a job's input images)
    preferences: Any = None  # PreferencesService (web UI theme and remembered form values)
    styles: Any = None  # StyleService (prompt styles: a user's own and the team's)
    presets: Any = None  # PresetService (saved generate-form values)
    audit: Any = None  # AuditLog (append-only audit events)
    gallery: Any = None  # GalleryService (search, stars, boards, bulk zip/delete, team browsing)
    model_notes: Any = None  # ModelNotesService (trigger words, notes, previews of models)
    queue_view: Any = None  # QueueViewService (places in line; everyone's jobs for queue:all)
    socket_cap: Any = None  # SocketCap (ComfyUI WebSockets per user, across both listeners)
    metrics: Any = None  # FleetMetrics (GET /metrics: Prometheus)
    public_url: str = "http://127.0.0.1:8080"
    extra: dict[str, Any] = field(default_factory=dict)
