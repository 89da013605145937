"""Endpoints: named pools of worker replicas with an autoscaling policy, and their replicas and events."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sdfleet.domain.errors import InvalidInput

EVERYONE = "*"
MAX_REPLICAS = 64
LAUNCHERS = ("local", "ray")
#: resources a `ray` endpoint asks for each replica (any other name is a custom Ray resource)
RAY_BUILTIN_RESOURCES = ("num_cpus", "num_gpus", "memory")
_RESOURCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_:.\-]{0,63}")
KINDS = ("inference", "train")  #: job kinds an endpoint may run; "train" lets its workers train LoRAs
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_DEVICE = re.compile(r"cpu|auto|cuda(:\d{1,2})?|mps")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class EndpointStatus(enum.StrEnum):
    """Where an endpoint is in its life: `creating → ready ⇄ scaling → deleting → deleted`."""

    CREATING = "creating"  #: created; its first replicas are not up yet
    READY = "ready"  #: running the number of replicas the autoscaler wants
    SCALING = "scaling"  #: replicas are being started or drained
    DELETING = "deleting"  #: draining every replica before it goes away
    DELETED = "deleted"  #: gone; kept for its events until the name is reused
    FAILED = "failed"  #: the launcher cannot run it; `reason` says why

    @property
    def live(self) -> bool:
        return self in (EndpointStatus.CREATING, EndpointStatus.READY, EndpointStatus.SCALING)


class ReplicaStatus(enum.StrEnum):
    """What one replica is doing, from its worker's reports."""

    STARTING = "starting"  #: launched, not yet reporting
    IDLE = "idle"  #: waiting for work
    BUSY = "busy"  #: running a job
    DRAINING = "draining"  #: finishing its job before exiting
    LOST = "lost"  #: stopped reporting (process gone or unreachable)


@dataclass(frozen=True)
class EndpointConfig:
    """What an operator sets on an endpoint."""

    launcher: str = "local"
    devices: tuple[str, ...] = ("cpu",)
    min_replicas: int = 0
    max_replicas: int = 1
    target_queue_per_replica: int = 1
    idle_seconds: float = 300.0
    preload: tuple[str, ...] = ()
    allowed_roles: tuple[str, ...] = (EVERYONE,)
    kinds: tuple[str, ...] = ("inference",)
    #: what each `ray` replica asks Ray for: num_cpus, num_gpus, memory (bytes) and custom resources
    resources: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Endpoint:
    """An endpoint as the services see it."""

    name: str
    config: EndpointConfig
    status: EndpointStatus
    reason: str | None
    desired_replicas: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Replica:
    """One worker of an endpoint, from the workers table."""

    worker_id: str
    name: str
    status: ReplicaStatus
    device: str | None
    loaded_models: tuple[str, ...]
    last_seen_at: datetime | None
    managed: bool  #: started by the fleet's launcher (else an operator-run worker)
    memory: dict[str, int] | None = None  #: the worker's last `{ram_total, ram_free, vram_total, vram_free}`


@dataclass(frozen=True)
class EndpointEvent:
    """A recorded decision (scale up/down, replica replaced, status change)."""

    endpoint: str
    seq: int
    type: str
    data: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class EndpointChange:
    """A partial update; None leaves a field as it is."""

    devices: list[str] | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    target_queue_per_replica: int | None = None
    idle_seconds: float | None = None
    preload: list[str] | None = None
    allowed_roles: list[str] | None = None
    kinds: list[str] | None = None


def is_valid_endpoint_name(value: object) -> bool:
    """Whether `value` could be an endpoint name."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def check_endpoint_name(value: object) -> str:
    """Endpoint names: 1–64 lowercase ASCII letters, digits, `_ -`, starting with a letter or digit."""
    if not is_valid_endpoint_name(value):
        raise InvalidInput("name must be 1-64 lowercase ASCII letters, digits, '_' or '-', starting with a letter "
                           f"or digit, got {value!r}", field="name")
    return value  # type: ignore[return-value]


def check_config(config: EndpointConfig) -> EndpointConfig:
    """Validate every field, naming the first bad one and what was expected."""
    if config.launcher not in LAUNCHERS:
        raise InvalidInput(f"launcher must be one of {', '.join(LAUNCHERS)}, got {config.launcher!r}",
                           field="launcher")
    if not config.devices or len(config.devices) > MAX_REPLICAS:
        raise InvalidInput(f"devices must list 1-{MAX_REPLICAS} devices", field="devices")
    for device in config.devices:
        if not isinstance(device, str) or not _DEVICE.fullmatch(device):
            raise InvalidInput(f"devices: expected cpu, auto, mps or cuda:N, got {device!r}", field="devices")
    if not 0 <= config.min_replicas <= MAX_REPLICAS:
        raise InvalidInput(f"min_replicas must be 0-{MAX_REPLICAS}, got {config.min_replicas}", field="min_replicas")
    if not 0 <= config.max_replicas <= MAX_REPLICAS:
        raise InvalidInput(f"max_replicas must be 0-{MAX_REPLICAS}, got {config.max_replicas}", field="max_replicas")
    if config.min_replicas > config.max_replicas:
        raise InvalidInput(f"min_replicas ({config.min_replicas}) must not exceed max_replicas "
                           f"({config.max_replicas})", field="min_replicas")
    _check_resources(config)
    accelerators = [d for d in config.devices if d.startswith("cuda")]
    # a `ray` replica sees only the GPUs Ray gives it: its devices are not this host's
    if config.launcher == "local" and accelerators and config.max_replicas > len(config.devices):
        raise InvalidInput(f"max_replicas ({config.max_replicas}) must not exceed the number of GPU devices "
                           f"({len(config.devices)}): one replica per device", field="max_replicas")
    if len(set(config.devices)) != len(config.devices):
        raise InvalidInput("devices must not repeat", field="devices")
    if not 1 <= config.target_queue_per_replica <= 10_000:
        raise InvalidInput(f"target_queue_per_replica must be 1-10000, got {config.target_queue_per_replica}",
                           field="target_queue_per_replica")
    if not 0 <= config.idle_seconds <= 7 * 24 * 3600:
        raise InvalidInput(f"idle_seconds must be 0-604800, got {config.idle_seconds}", field="idle_seconds")
    if len(config.preload) > 32:
        raise InvalidInput("preload lists at most 32 models", field="preload")
    for sha in config.preload:
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise InvalidInput(f"preload: expected 64 lowercase hex characters (a model's sha256), got {sha!r}",
                               field="preload")
    if not config.kinds or any(k not in KINDS for k in config.kinds):
        raise InvalidInput(f"kinds must list some of {', '.join(KINDS)}, got {list(config.kinds)!r}", field="kinds")
    if not config.allowed_roles or len(config.allowed_roles) > 64:
        raise InvalidInput("allowed_roles must list 1-64 role names (or \"*\" for everyone)", field="allowed_roles")
    return config


def _check_resources(config: EndpointConfig) -> None:
    if config.resources and config.launcher != "ray":
        raise InvalidInput(f"resources apply to the ray launcher only, got launcher {config.launcher!r}",
                           field="resources")
    if len(config.resources) > 16:
        raise InvalidInput("resources lists at most 16 entries", field="resources")
    for name, amount in config.resources.items():
        if not isinstance(name, str) or not _RESOURCE.fullmatch(name):
            raise InvalidInput("resources: names are 1-64 letters, digits, '_', ':', '.' or '-', got "
                               f"{name!r}", field="resources")
        if isinstance(amount, bool) or not isinstance(amount, int | float) or not 0 <= amount <= 1e15:
            raise InvalidInput(f"resources: {name} must be a number from 0 to 1e15, got {amount!r}",
                               field="resources")


def may_use(*, roles: tuple[str, ...], is_admin: bool, config: EndpointConfig) -> bool:
    """Admins use every endpoint; others one that allows everyone or one of their roles."""
    allowed = set(config.allowed_roles)
    return is_admin or EVERYONE in allowed or bool(allowed & set(roles))
