"""The worker protocol, server side: claim, heartbeat, outputs, complete, fail, model and input downloads.

Workers authenticate with worker tokens (never user keys) and reach only the jobs they hold."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from PIL import Image

from sdfleet.domain.checkpoints import CheckpointStatus
from sdfleet.domain.errors import Conflict, Gone, InvalidInput, NotFound, Unauthenticated
from sdfleet.domain.ids import is_valid_id, new_id
from sdfleet.domain.leadership import LeaderFence
from sdfleet.domain.workers import WorkerRecord
from sdfleet.engine.image_admission import ImageRejected, ImageTooLarge, admit_image
from sdfleet.jobs.live import LiveJobQueue
from sdfleet.jobs.queue import JobQueue, StaleLease
from sdfleet.jobs.records import Job, JobOutput, JobProgress, Lease, ModelLoad
from sdfleet.jobs.spec import ModelPin
from sdfleet.modelfiles.types import ENGINE_FOLDERS
from sdfleet.services.credentials import WORKER_TOKEN_PREFIX, new_token, token_hash
from sdfleet.services.notifier import Notifier, PreviewStore, job_topic, queue_topic, worker_revoked_topic
from sdfleet.services.queue_watch import QueueWatch
from sdfleet.services.worker_presence import WorkerPresence
from sdfleet.store.workers import SqlWorkerRegistry

MAX_OUTPUT_BYTES = 64 * 1024 * 1024
MAX_OUTPUTS = 256
#: how often a long poll re-checks the queue without a wake-up (another API server's submission)
QUEUE_RECHECK_SECONDS = 1.0


@dataclass(frozen=True)
class IssuedWorker:
    """A newly registered worker and its token (shown once)."""

    worker: WorkerRecord
    token: str


@dataclass(frozen=True)
class OutputReport:
    """What a worker says about an uploaded output when completing."""

    index: int
    node_id: str


@dataclass(frozen=True)
class Assignment:
    """What the server asks of a worker: its endpoint and the models to have loaded."""

    endpoint: str
    #: the models the endpoint preloads: the worker downloads and loads them before its first job
    preload: list[ModelPin]


class StaleLeaseError(Conflict):
    """The worker's fencing token is not current: its result is refused."""

    code = "stale_lease"


class WorkerService:
    """Server side of `/api/v1/worker/…`."""

    def __init__(self, *, queue: JobQueue, registry: SqlWorkerRegistry, objects, blob_key: Callable[[str], str],
                 notifier: Notifier, previews: PreviewStore, lease_seconds: float,
                 clock: Callable[[], datetime], max_running_per_user: int | None = None,
                 on_finished: Callable[[Job], None] | None = None,
                 on_models_loaded: Callable[[Job, list[ModelLoad]], None] | None = None,
                 queued_endpoints: Callable[[], set[str]] | None = None,
                 max_output_pixels: int = 8192 * 8192) -> None:
        self._queue = queue
        self._max_output_pixels = max_output_pixels
        self.presence = WorkerPresence(registry, clock=clock)
        #: None: long polls re-claim every QUEUE_RECHECK_SECONDS (a store that cannot say what is queued)
        self._watch = None if queued_endpoints is None else QueueWatch(queued_endpoints=queued_endpoints,
                                                                       notify=notifier.wake)
        if self._watch is not None:
            notifier.on_topic(queue_topic(""), self._watch.queued)
        # a revocation on another server: its token is refused here at once (the presence flush is the safety net)
        notifier.on_topic(worker_revoked_topic(""),
                          lambda topic: self.presence.forget(topic.removeprefix(worker_revoked_topic(""))))
        self._on_finished = on_finished  # metrics: wait/run times and device-seconds of each finished job
        self._on_models_loaded = on_models_loaded  # metrics: model load times and cache results a worker reports
        self._registry = registry
        self._objects = objects
        self._blob_key = blob_key
        self._notifier = notifier
        self._previews = previews
        self.lease_seconds = lease_seconds
        self._clock = clock
        self._max_running_per_user = max_running_per_user

    # Registration and identity
    def register(self, *, name: str, endpoint: str, fence: LeaderFence | None = None) -> IssuedWorker:
        """Create a worker identity for an endpoint (operator, or the fleet manager under its leader `fence`)."""
        token = new_token(WORKER_TOKEN_PREFIX)
        record = self._registry.add(worker_id=new_id(), name=name[:100], endpoint=endpoint,
                                    token_hash=token_hash(token), now=self._clock(), fence=fence)
        return IssuedWorker(worker=record, token=token)

    def authenticate(self, token: str) -> WorkerRecord:
        """The worker owning a token, or Unauthenticated."""
        if not token.startswith(WORKER_TOKEN_PREFIX):
            raise Unauthenticated("a worker token is required")
        worker = self.presence.authenticate(token_hash(token))
        if worker is None or worker.revoked_at is not None:
            raise Unauthenticated("invalid or revoked worker token")
        return worker

    def report(self, worker: WorkerRecord, *, status: str, device: str | None, loaded_models: list[str],
               info: dict) -> None:
        """Record what the worker says about itself (replica state for endpoints), when it changed."""
        if not self.presence.report_changed(worker.id, (status, device, tuple(loaded_models[:64]))):
            self.presence.flush_if_due()
            return
        self._registry.report(worker.id, now=self._clock(), status=status, device=device,
                              loaded_models=loaded_models[:64], info=info)

    def assignment(self, worker: WorkerRecord) -> Assignment:
        """The worker's endpoint and the active models its `preload` names."""
        models = [ModelPin(sha256=c.sha256, size=c.size, folder=ENGINE_FOLDERS[c.model_type], name=c.name)
                  for c in self._registry.preloaded(worker.endpoint)
                  if c.status is CheckpointStatus.ACTIVE and c.model_type in ENGINE_FOLDERS]
        return Assignment(endpoint=worker.endpoint, preload=models)

    def revoke(self, worker_id: str, *, fence: LeaderFence | None = None) -> None:
        """Revoke a worker's token (the fleet manager's revokes carry its leader `fence`)."""
        self._registry.revoke(worker_id, now=self._clock(), fence=fence)
        self.presence.forget(worker_id)
        self._notifier.notify(worker_revoked_topic(worker_id))  # the other API servers forget it too

    @property
    def queue(self) -> JobQueue:
        """The queue this service serves (trainings share it, and so its live progress)."""
        return self._queue

    # Jobs
    def claim(self, worker: WorkerRecord) -> Lease | None:
        """Take the next job of the worker's endpoint, if any (the worker shows busy while it holds one)."""
        self.presence.seen(worker.id)
        version = self._watch.version(worker.endpoint) if self._watch is not None else 0
        lease = self._queue.claim(worker_id=worker.id, endpoints=[worker.endpoint], now=self._clock(),
                                  lease_seconds=self.lease_seconds, max_running_per_user=self._max_running_per_user)
        if lease is not None:
            self._notifier.notify(job_topic(lease.job.id))
        elif self._watch is not None:
            self._watch.found_empty(worker.endpoint, version)
        return lease

    def held(self, worker: WorkerRecord, job_id: str, token: int) -> Job:
        """The job, if this worker holds it with this fencing token; else StaleLeaseError (409)."""
        return self._held(worker, job_id, token)

    def finished(self, worker: WorkerRecord, job_id: str, job: Job | None = None) -> None:
        """After a job ended: drop its preview, mark the worker idle, wake the job's listeners (and count the
        finished `job` in the metrics)."""
        self._finished(worker, job_id, job)

    async def claim_waiting(self, worker: WorkerRecord, *, wait_seconds: float,
                            disconnected: Callable[[], Awaitable[bool]] | None = None) -> Lease | None:
        """Long-poll: the next job of the worker's endpoint, waiting (asleep on the endpoint's queue topic, no
        thread held) up to `wait_seconds`; None when none arrived or the worker went away."""
        deadline = time.monotonic() + wait_seconds
        while True:
            if self._watch is None or self._watch.maybe_work(worker.endpoint):
                lease = await asyncio.to_thread(self.claim, worker)
                if lease is not None:
                    return lease
            else:
                self.presence.seen(worker.id)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (disconnected is not None and await disconnected()):
                return None
            if self._watch is not None:
                await asyncio.to_thread(self._watch.recheck_if_due)
            await self._notifier.wait(queue_topic(worker.endpoint), min(remaining, QUEUE_RECHECK_SECONDS))

    def _held(self, worker: WorkerRecord, job_id: str, token: int) -> Job:
        try:
            job = self._queue.check_lease(job_id, token=token) if is_valid_id(job_id) else None
        except StaleLease:
            job = None
        if job is None or job.worker_id != worker.id:
            raise StaleLeaseError(f"job {job_id} is not held by this worker with fencing token {token}")
        return job

    def heartbeat(self, worker: WorkerRecord, job_id: str, *, token: int, progress: JobProgress | None,
                  preview_png: bytes | None) -> Job:
        """Extend the lease and record progress; the answer says whether cancel was requested."""
        self._held(worker, job_id, token)
        try:
            job = self._queue.heartbeat(job_id, token=token, now=self._clock(), lease_seconds=self.lease_seconds,
                                        progress=progress)
        except StaleLease:
            raise StaleLeaseError(f"job {job_id}: fencing token {token} is stale") from None
        if preview_png:
            self._previews.put(job_id, preview_png)
        self.presence.seen(worker.id)
        # this server's readers only: other servers learn the progress from the queue's live fan-out
        self._notifier.wake(job_topic(job_id))
        return job

    def store_output(self, worker: WorkerRecord, job_id: str, *, token: int, index: int, stream: BinaryIO) -> str:
        """Store one output PNG under the lease's own prefix (a stale worker cannot overwrite a result)."""
        if not 0 <= index < MAX_OUTPUTS:
            raise InvalidInput(f"output index must be 0-{MAX_OUTPUTS - 1}", field="index")
        self._held(worker, job_id, token)
        data = stream.read(MAX_OUTPUT_BYTES + 1)
        if len(data) > MAX_OUTPUT_BYTES:
            raise InvalidInput("output larger than 64 MiB", field="body")
        try:
            header = admit_image(data, max_pixels=self._max_output_pixels)  # the header only: nothing decoded
        except ImageTooLarge as exc:
            raise InvalidInput(f"output is {exc.width}x{exc.height}: over the limit of {exc.max_pixels} pixels "
                               "(SDFLEET_MAX_OUTPUT_PIXELS)", field="body",
                               details={"max_pixels": exc.max_pixels, "width": exc.width,
                                        "height": exc.height}) from None
        except ImageRejected as exc:
            raise InvalidInput("output is not a PNG image", field="body") from exc
        if header.format != "PNG":
            raise InvalidInput("outputs must be PNG images", field="body")
        key = f"outputs/{job_id}/t{token}/{index}.png"
        self._objects.put(key, data, content_type="image/png")
        return key

    def complete(self, worker: WorkerRecord, job_id: str, *, token: int, outputs: list[OutputReport],
                 info: dict | None, model_loads: list[ModelLoad] | None = None) -> Job:
        """Record the uploaded outputs and finish the job, exactly once (and count what loading its models cost
        the worker, when it says)."""
        self._held(worker, job_id, token)
        records = []
        for report in outputs:
            key = f"outputs/{job_id}/t{token}/{report.index}.png"
            try:
                head = self._objects.head(key)
            except KeyError:
                raise InvalidInput(f"output {report.index} was not uploaded", field="outputs") from None
            with Image.open(io.BytesIO(self._objects.read_bytes(key))) as img:
                width, height = img.size
            records.append(JobOutput(index=report.index, key=key, node_id=report.node_id, width=width,
                                     height=height, size=head.size))
        try:
            job = self._queue.complete(job_id, token=token, outputs=records, now=self._clock(), info=info)
        except StaleLease:
            raise StaleLeaseError(f"job {job_id}: fencing token {token} is stale") from None
        self._drop_other_attempts(job_id, token)
        if model_loads and self._on_models_loaded is not None:
            self._on_models_loaded(job, model_loads)
        self._finished(worker, job_id, job)
        return job

    def fail(self, worker: WorkerRecord, job_id: str, *, token: int, error: dict) -> Job:
        """Finish the job as failed with the worker's error."""
        self._held(worker, job_id, token)
        try:
            job = self._queue.fail(job_id, token=token, error=error, now=self._clock())
        except StaleLease:
            raise StaleLeaseError(f"job {job_id}: fencing token {token} is stale") from None
        self._finished(worker, job_id, job)
        return job

    def cancelled(self, worker: WorkerRecord, job_id: str, *, token: int) -> Job:
        """The worker stopped the job because its owner cancelled it."""
        self._held(worker, job_id, token)
        job = self._queue.acknowledge_cancel(job_id, token=token, now=self._clock())
        self._finished(worker, job_id, job)
        return job

    def release(self, worker: WorkerRecord, job_id: str, *, token: int, reason: str) -> Job:
        """Hand the job back to the queue (worker shutting down)."""
        self._held(worker, job_id, token)
        job = self._queue.release(job_id, token=token, now=self._clock(), reason=reason[:200])
        self._finished(worker, job_id)
        self._notifier.notify(queue_topic(job.endpoint))
        return job

    def _finished(self, worker: WorkerRecord, job_id: str, job: Job | None = None) -> None:
        if job is not None and job.status.finished and self._on_finished is not None:
            self._on_finished(job)
        self._previews.drop(job_id)
        self.presence.seen(worker.id)
        if isinstance(self._queue, LiveJobQueue):
            self._notifier.wake(job_topic(job_id))  # the live queue tells the other servers (`forget`)
        else:
            self._notifier.notify(job_topic(job_id))
        if self._max_running_per_user is not None and job is not None:
            self._notifier.notify(queue_topic(job.endpoint))  # the owner's next job may be claimable now

    def _drop_other_attempts(self, job_id: str, token: int) -> None:
        for info in list(self._objects.list(f"outputs/{job_id}/")):
            if not info.key.startswith(f"outputs/{job_id}/t{token}/"):
                self._objects.delete(info.key)

    # Files
    def model_size(self, worker: WorkerRecord, sha256: str) -> int:
        """The size of a model blob the worker needs for a job it holds or its endpoint preloads (else NotFound)."""
        if not (len(sha256) == 64 and all(c in "0123456789abcdef" for c in sha256)):
            raise NotFound("no such model")
        if not self._queue.holds_model(worker.id, sha256) and \
                sha256 not in {m.sha256 for m in self.assignment(worker).preload}:
            raise NotFound("no such model among the jobs this worker holds or its endpoint preloads")
        try:
            return self._objects.head(self._blob_key(sha256)).size
        except KeyError:  # ObjectNotFound: the model was deleted after the job pinned it
            raise Gone(f"model {sha256} is no longer stored") from None

    def open_model(self, worker: WorkerRecord, sha256: str, *, start: int = 0,
                   end: int | None = None) -> Iterator[bytes]:
        """Stream (a range of) a model blob the worker needs for a job it holds or its endpoint preloads."""
        self.model_size(worker, sha256)
        return self._objects.open_range(self._blob_key(sha256), start=start, end=end)

    def open_input(self, worker: WorkerRecord, job_id: str, *, token: int, name: str) -> Iterator[bytes]:
        """Stream an input image of a held job."""
        job = self._held(worker, job_id, token)
        entry = next((i for i in job.spec.inputs if i.name == name), None)
        if entry is None:
            raise NotFound(f"job {job_id} has no input {name!r}")
        try:
            return self._objects.open_range(entry.key)
        except KeyError:  # ObjectNotFound: deleted after the job was queued
            raise Gone(f"input image {name!r} of job {job_id} is no longer stored") from None

    def reap(self) -> None:
        """Requeue or fail jobs whose leases expired (called by the fleet's reaper)."""
        result = self._queue.reap(now=self._clock())
        for job_id in result.requeued + result.failed + result.cancelled:
            self._previews.drop(job_id)
            self._notifier.notify(job_topic(job_id))
        if result.requeued:
            for job_id in result.requeued:
                job = self._queue.get(job_id)
                if job is not None:
                    self._notifier.notify(queue_topic(job.endpoint))
