"""Prometheus metrics of one API server: the fleet's state read at scrape time, plus what this process saw.

Gauges about queues, jobs and replicas come from the database when `/metrics` is scraped, so every API server
reports the same fleet-wide values (scrape any one, or all and take `max`). Histograms and counters count what
this process handled (job completions reported to it, HTTP requests it answered): sum them over servers, as
Prometheus does for any multi-instance service. Each server has its own registry, so tests and several apps in
one process never share counts."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from sdfleet.domain.accounts import Principal
from sdfleet.jobs.records import Job, ModelLoad
from sdfleet.services.authorization import authorize_every
from sdfleet.store.fleet_stats import FleetSnapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: job wait and run times: 0.1 s (a cached 64² job) to an hour (a LoRA training)
_JOB_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: a model's fetch and load: a memory hit (~1 ms) to a multi-GB download
_LOAD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


def job_model(job: Job) -> str:
    """The checkpoint a job ran, as the registry names it (its pins): bounded by the registry, unlike free text.

    The summary's model when it is one of the pinned checkpoints, else the first pinned checkpoint, else ""."""
    names = [pin.name for pin in job.spec.models if pin.folder == "checkpoints"]
    if job.summary.model in names:
        return job.summary.model
    return names[0] if names else ""


class FleetMetrics:
    """The metrics registry of one API server; `render` is what `GET /metrics` answers."""

    def __init__(self, *, snapshot: Callable[[], FleetSnapshot], token: str | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._token = token.encode() if token else None
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_FleetCollector(snapshot, clock))
        self.job_wait = Histogram("sdfleet_job_wait_seconds", "Time from submission to a worker's claim.",
                                  ["endpoint", "kind", "model"], buckets=_JOB_BUCKETS, registry=self.registry)
        self.job_run = Histogram("sdfleet_job_run_seconds", "Time from a worker's claim to the job's end.",
                                 ["endpoint", "kind", "model", "status"], buckets=_JOB_BUCKETS,
                                 registry=self.registry)
        self.model_load = Histogram(
            "sdfleet_model_load_seconds", "Seconds a worker spent fetching and loading a model a job pins (per job "
            "and model, as the worker reported it at completion).", ["folder", "model"], buckets=_LOAD_BUCKETS,
            registry=self.registry)
        self.model_cache = Counter(
            "sdfleet_model_cache", "Where workers found the models jobs pin: in the engine's memory, in the "
            "worker's file cache (disk), or neither (download).", ["folder", "model", "result"],
            registry=self.registry)
        self.device_seconds = Counter(
            "sdfleet_gpu_seconds", "Seconds workers spent on each user's jobs (GPU-seconds on GPU workers): "
            "the basis for metering and quotas.", ["user_id", "endpoint"], registry=self.registry)
        self.http = Histogram("sdfleet_http_request_duration_seconds", "HTTP requests this server answered.",
                              ["method", "route", "status"], buckets=_HTTP_BUCKETS, registry=self.registry)

    def may_scrape(self, bearer: str | None) -> bool:
        """Whether a bearer value is the metrics token (compared in constant time)."""
        return bool(self._token and bearer) and hmac.compare_digest(bearer.encode(), self._token)

    def render(self, principal: Principal | None) -> bytes:
        """The exposition text; a principal (when no metrics token was shown) must hold every permission."""
        if principal is not None:
            authorize_every(principal)
        return generate_latest(self.registry)

    def job_finished(self, job: Job) -> None:
        """Count a job a worker finished (succeeded, failed or cancelled) through this server."""
        endpoint, kind = job.endpoint or "", str(job.kind)
        if job.started_at is None or job.finished_at is None:
            return
        ran = max(0.0, (job.finished_at - job.started_at).total_seconds())
        model = job_model(job)
        self.job_wait.labels(endpoint, kind, model).observe(
            max(0.0, (job.started_at - job.queued_at).total_seconds()))
        self.job_run.labels(endpoint, kind, model, str(job.status)).observe(ran)
        self.device_seconds.labels(job.user_id, endpoint).inc(ran)

    def models_loaded(self, job: Job, loads: list[ModelLoad]) -> None:
        """Count what loading a finished job's models cost its worker; a sha256 the job does not pin is ignored
        (labels come from the job's pins, never from what a worker sends)."""
        pins = {pin.sha256: pin for pin in job.spec.models}
        for load in loads:
            pin = pins.get(load.sha256)
            if pin is None:
                continue
            self.model_load.labels(pin.folder, pin.name).observe(load.seconds)
            self.model_cache.labels(pin.folder, pin.name, load.source.value).inc()

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered HTTP request under its route template (never the raw path: bounded labels)."""
        self.http.labels(method, route, str(status)).observe(seconds)


class _FleetCollector:
    """Gauges read from the database at each scrape."""

    def __init__(self, snapshot: Callable[[], FleetSnapshot], clock: Callable[[], datetime]) -> None:
        self._snapshot = snapshot
        self._clock = clock

    def describe(self) -> list[Metric]:
        return []  # computed at scrape time; nothing to describe up front (and no query at registration)

    def collect(self) -> Iterator[Metric]:
        snap, now = self._snapshot(), self._clock()
        jobs = GaugeMetricFamily("sdfleet_jobs", "Jobs in the database by kind and status.", labels=["kind", "status"])
        for (kind, status), n in sorted(snap.jobs.items()):
            jobs.add_metric([kind, status], n)
        yield jobs
        depth = GaugeMetricFamily("sdfleet_queue_depth", "Queued jobs per endpoint.", labels=["endpoint"])
        oldest = GaugeMetricFamily("sdfleet_queue_oldest_wait_seconds", "How long the oldest queued job of each "
                                   "endpoint has waited.", labels=["endpoint"])
        for endpoint, n in sorted(snap.queue_depth.items()):
            depth.add_metric([endpoint], n)
            if endpoint in snap.oldest_queued_at:
                oldest.add_metric([endpoint], max(0.0, (now - snap.oldest_queued_at[endpoint]).total_seconds()))
        yield depth
        yield oldest
        replicas = GaugeMetricFamily("sdfleet_replicas", "Registered workers (replicas) per endpoint by state.",
                                     labels=["endpoint", "state"])
        for (endpoint, state), n in sorted(snap.replicas.items()):
            replicas.add_metric([endpoint, state], n)
        yield replicas
        desired = GaugeMetricFamily("sdfleet_endpoint_desired_replicas", "Replicas the autoscaler wants.",
                                    labels=["endpoint"])
        for endpoint, n in sorted(snap.desired_replicas.items()):
            desired.add_metric([endpoint], n)
        yield desired
        memory = GaugeMetricFamily("sdfleet_worker_memory_bytes", "Memory each live worker last reported.",
                                   labels=["worker", "endpoint", "kind", "state"])
        for m in snap.memory:
            for kind, total, free in (("ram", m.ram_total, m.ram_free), ("vram", m.vram_total, m.vram_free)):
                memory.add_metric([m.name, m.endpoint, kind, "total"], total)
                memory.add_metric([m.name, m.endpoint, kind, "free"], free)
        yield memory
