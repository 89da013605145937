"""Schemas for endpoints, their replicas and their events."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, StrictFloat, StrictInt, StrictStr

from sdfleet.api.schemas.base import Strict
from sdfleet.domain.endpoints import Endpoint, EndpointChange, EndpointConfig, EndpointEvent, Replica

Count = StrictInt
Names = list[StrictStr]


class EndpointCreate(Strict):
    name: StrictStr = Field(max_length=64, description="Lowercase letters, digits, '_' and '-'.")
    launcher: Literal["local", "ray"] = "local"
    devices: Names = Field(default_factory=lambda: ["cpu"], max_length=64, description='e.g. ["cuda:0","cuda:1"].')
    min_replicas: Count = Field(default=0, ge=0, le=64)
    max_replicas: Count = Field(default=1, ge=0, le=64)
    target_queue_per_replica: Count = Field(default=1, ge=1, le=10_000)
    idle_seconds: StrictFloat = Field(default=300, ge=0, le=604_800)
    preload: Names = Field(default_factory=list, max_length=32, description="sha256s of models to keep loaded.")
    allowed_roles: Names = Field(default_factory=lambda: ["*"], max_length=64, description='"*" for everyone.')
    kinds: list[Literal["inference", "train"]] = Field(
        default_factory=lambda: ["inference"], max_length=4,
        description='Job kinds its workers run; "train" lets them train LoRAs.')
    resources: dict[StrictStr, StrictFloat | StrictInt] = Field(
        default_factory=dict, max_length=16,
        description='ray launcher only: what each replica asks Ray for, e.g. {"num_gpus": 1, "memory": 8e9, '
                    '"accelerator_type:H100": 1}.')

    def config(self) -> EndpointConfig:
        return EndpointConfig(launcher=self.launcher, devices=tuple(self.devices), min_replicas=self.min_replicas,
                              max_replicas=self.max_replicas, target_queue_per_replica=self.target_queue_per_replica,
                              idle_seconds=float(self.idle_seconds), preload=tuple(self.preload),
                              allowed_roles=tuple(self.allowed_roles), kinds=tuple(self.kinds),
                              resources={k: float(v) for k, v in self.resources.items()})


class EndpointUpdate(Strict):
    devices: Names | None = Field(default=None, max_length=64)
    min_replicas: Count | None = Field(default=None, ge=0, le=64)
    max_replicas: Count | None = Field(default=None, ge=0, le=64)
    target_queue_per_replica: Count | None = Field(default=None, ge=1, le=10_000)
    idle_seconds: StrictFloat | None = Field(default=None, ge=0, le=604_800)
    preload: Names | None = Field(default=None, max_length=32)
    allowed_roles: Names | None = Field(default=None, max_length=64)
    kinds: list[Literal["inference", "train"]] | None = Field(default=None, max_length=4)

    def change(self) -> EndpointChange:
        return EndpointChange(devices=self.devices, min_replicas=self.min_replicas, max_replicas=self.max_replicas,
                              target_queue_per_replica=self.target_queue_per_replica,
                              idle_seconds=None if self.idle_seconds is None else float(self.idle_seconds),
                              preload=self.preload, allowed_roles=self.allowed_roles, kinds=self.kinds)


class ReplicaPublic(BaseModel):
    worker_id: str
    name: str
    status: str
    device: str | None
    loaded_models: list[str]
    last_seen_at: datetime | None
    managed: bool
    memory: dict[str, int] | None = None  #: bytes: ram_total, ram_free, vram_total, vram_free

    @classmethod
    def of(cls, replica: Replica) -> ReplicaPublic:
        return cls(worker_id=replica.worker_id, name=replica.name, status=replica.status.value, device=replica.device,
                   loaded_models=list(replica.loaded_models), last_seen_at=replica.last_seen_at,
                   managed=replica.managed, memory=replica.memory)


class EndpointPublic(BaseModel):
    name: str
    launcher: str
    devices: list[str]
    min_replicas: int
    max_replicas: int
    target_queue_per_replica: int
    idle_seconds: float
    preload: list[str]
    allowed_roles: list[str]
    kinds: list[str]
    resources: dict[str, float]
    status: str
    reason: str | None
    desired_replicas: int
    replicas: list[ReplicaPublic]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, endpoint: Endpoint, replicas: list[Replica]) -> EndpointPublic:
        c = endpoint.config
        return cls(name=endpoint.name, launcher=c.launcher, devices=list(c.devices), min_replicas=c.min_replicas,
                   max_replicas=c.max_replicas, target_queue_per_replica=c.target_queue_per_replica,
                   idle_seconds=c.idle_seconds, preload=list(c.preload), allowed_roles=list(c.allowed_roles),
                   kinds=list(c.kinds), resources=dict(c.resources), status=endpoint.status.value,
                   reason=endpoint.reason,
                   desired_replicas=endpoint.desired_replicas, replicas=[ReplicaPublic.of(r) for r in replicas],
                   created_at=endpoint.created_at, updated_at=endpoint.updated_at)


class EndpointEventPublic(BaseModel):
    seq: int
    type: str
    data: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, event: EndpointEvent) -> EndpointEventPublic:
        return cls(seq=event.seq, type=event.type, data=event.data, created_at=event.created_at)
