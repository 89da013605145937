"""Inference jobs, owner side: submit, list, get, cancel, delete, events, outputs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from sdfleet.domain.accounts import Principal
from sdfleet.domain.errors import Conflict, InvalidInput, NotFound, QuotaExceeded
from sdfleet.domain.ids import new_id
from sdfleet.domain.pagination import Page, PageRequest
from sdfleet.domain.permissions import Permission
from sdfleet.engine.a1111_fields import only_masked
from sdfleet.engine.image_admission import DEFAULT_MAX_IMAGE_PIXELS
from sdfleet.engine.work_estimate import estimate_work
from sdfleet.jobs.queue import JobQueue, submit_once
from sdfleet.jobs.records import Job, JobEvent, JobKind, JobStatus, NewJob
from sdfleet.jobs.spec import GenerateSpec, InputImage, JobSummary, ModelPin
from sdfleet.modelfiles.types import ENGINE_FOLDERS, ModelType
from sdfleet.services.authorization import authorize, fetch_owned
from sdfleet.services.graphs import GraphTools
from sdfleet.services.inputs import InputImages, a1111_mask, blank_mask, decode_base64_image
from sdfleet.services.model_resolver import ModelResolver, VisibleModels
from sdfleet.services.notifier import Notifier, PreviewStore, job_topic, queue_topic


class ModelCatalog(Protocol):
    """What inference, ComfyUI and workflows need from the model registry."""

    def visible_pins(self, principal: Principal) -> list[ModelPin]: ...

    def resolve(self, principal: Principal, *, model_type: str, name: str): ...

    def visible_names(self, principal: Principal, model_type: str) -> list[str]: ...

    def visible_names_by_type(self, principal: Principal) -> dict[str, list[str]]: ...


class EndpointRouter(Protocol):
    """Chooses the endpoint a job runs on, or refuses (409) when none the user may use can run it."""

    def route(self, principal: Principal, *, requested: str | None, model_sha256s: list[str]) -> str: ...


class StaticRouter:
    """One fixed set of endpoints open to every user (until endpoints are managed objects)."""

    def __init__(self, endpoints: list[str], default: str = "default") -> None:
        self._endpoints = endpoints
        self._default = default

    def route(self, principal: Principal, *, requested: str | None, model_sha256s: list[str]) -> str:
        name = requested or self._default
        if name not in self._endpoints:
            raise Conflict(f"no endpoint named {name!r} that you may use; available: {', '.join(self._endpoints)}",
                           details={"field": "endpoint"})
        return name


@dataclass(frozen=True)
class InferenceLimits:
    """Limits checked before queueing."""

    max_queued_per_user: int = 200
    max_work_per_request: int = 2048 * 2048 * 150 * 8  # width × height × steps × batch
    max_attempts: int = 3
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS  # input images, checked from the header before decoding


@dataclass(frozen=True)
class Submission:
    """A submission as parsed at the edge: an A1111 task or a ComfyUI API graph."""

    task: str | None = None
    params: dict[str, Any] | None = None
    graph: dict[str, Any] | None = None
    endpoint: str | None = None
    idempotency_key: str | None = None
    source: str = "api"
    extra: dict[str, Any] = field(default_factory=dict)
    #: a one-off webhook URL told when the job finishes (signed with the user's job-webhook secret)
    webhook: str | None = None


def request_hash(body: Mapping[str, Any]) -> str:
    """A stable hash of a submission body (Idempotency-Key conflicts compare these)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


class InferenceService:
    """Everything a user does with their inference jobs. Another user's job is always 404."""

    def __init__(self, *, queue: JobQueue, objects, catalog: ModelCatalog, graphs: GraphTools,
                 router: EndpointRouter, notifier: Notifier, previews: PreviewStore, limits: InferenceLimits,
                 clock: Callable[[], datetime],
                 default_checkpoint_for: Callable[[Principal], str | None] | None = None,
                 check_webhook: Callable[..., str] | None = None) -> None:
        self._queue = queue
        #: the notifications' SSRF check of webhook URLs (None: submissions may not carry one)
        self._check_webhook = check_webhook
        #: the user's own default model (A1111 `options.sd_model_checkpoint`), used when a task names none
        self._default_checkpoint_for = default_checkpoint_for
        self._objects = objects
        self._models = ModelResolver(catalog)
        self._graphs = graphs
        self._router = router
        self._notifier = notifier
        self._previews = previews
        self._limits = limits
        self._clock = clock
        self._inputs = InputImages(objects, max_pixels=limits.max_image_pixels)

    # Submission
    def submit(self, principal: Principal, submission: Submission, *, body_hash: str | None = None) -> Job:
        """Validate, pin models by sha256, store input images, and queue the job."""
        authorize(principal, Permission.INFERENCE_ALL)
        # 1. Idempotency: the same key with the same body answers the same job.
        if submission.idempotency_key is not None:
            if not 1 <= len(submission.idempotency_key) <= 255:
                raise InvalidInput("Idempotency-Key must be 1-255 characters", field="Idempotency-Key")
        # 2. Build the graph.
        if (submission.graph is None) == (submission.task is None):
            raise InvalidInput("give either task (with params) or graph", field="task")
        if submission.graph is not None and submission.params is not None:
            raise InvalidInput("params go with task; a graph carries its own values", field="params")
        inputs: list[InputImage] = []
        webhook = None
        if submission.webhook is not None:
            if self._check_webhook is None:
                raise InvalidInput("this server does not send job webhooks", field="webhook")
            webhook = self._check_webhook(submission.webhook, field="webhook")
        visible = self._models.visible(principal)  # the one registry lookup of this submission
        summary = JobSummary(source=submission.source, webhook=webhook)
        if submission.task is not None:
            graph, summary = self._compile_task(principal, submission, inputs, visible, summary)
        else:
            graph = submission.graph
            if not isinstance(graph, dict) or not graph:
                raise InvalidInput("graph must be a non-empty object of nodes", field="graph")
        # 3. Validate against the node registry, the models this user may see and their input images.
        inputs += self._graph_inputs(principal, graph, known={i.name for i in inputs})
        model_names = visible.names_by_folder()
        model_names["input"] = [i.name for i in inputs]
        self._graphs.validate(graph, model_names=model_names)
        refs = self._graphs.model_references(graph) + self._graphs.embedding_references(
            graph, visible.names(ENGINE_FOLDERS[ModelType.EMBEDDING]))
        models = self._models.pin_references(refs, visible)
        # 4. Limits before queueing.
        self._check_work(graph, inputs, field="params" if submission.task else "graph")
        queued = self._queue.count(user_id=principal.user_id, statuses=(JobStatus.QUEUED,))
        if queued >= self._limits.max_queued_per_user:
            raise QuotaExceeded(f"you have {queued} queued jobs; the limit is {self._limits.max_queued_per_user}")
        endpoint = self._router.route(principal, requested=submission.endpoint,
                                      model_sha256s=[m.sha256 for m in models])
        if summary.model is None:
            summary = replace(summary, model=next((m.name for m in models if m.folder == "checkpoints"), None))
        spec = GenerateSpec(graph=graph, models=tuple(models), inputs=tuple(inputs), source=submission.source,
                            extra=submission.extra)
        new = NewJob(id=new_id(), user_id=principal.user_id, endpoint=endpoint, spec=spec,
                     summary=summary, max_attempts=self._limits.max_attempts,
                     idempotency_key=submission.idempotency_key, request_hash=body_hash)
        job = submit_once(self._queue, new, now=self._clock())
        if job.id == new.id:  # a new job, not the one a repeated Idempotency-Key made
            self._notifier.notify(queue_topic(endpoint))
        return job

    def _compile_task(self, principal: Principal, submission: Submission, inputs: list[InputImage],
                      visible: VisibleModels, summary: JobSummary) -> tuple[dict, JobSummary]:
        params = submission.params or {}
        if not isinstance(params, dict):
            raise InvalidInput("params must be an object of A1111 fields", field="params")
        images = []
        for i, value in enumerate(params.get("init_images") or []):
            stored = self._inputs.store(user_id=principal.user_id,
                                        data=decode_base64_image(value, field=f"params.init_images[{i}]"),
                                        field=f"params.init_images[{i}]")
            inputs.append(InputImage(name=stored.name, key=stored.key))
            images.append(stored.name)
        mask = None
        if params.get("mask"):
            data = a1111_mask(decode_base64_image(params["mask"], field="params.mask"), field="params.mask",
                              max_pixels=self._inputs.max_pixels)
            if submission.task == "img2img" and only_masked(params) and blank_mask(
                    data, inverted=bool(params.get("inpainting_mask_invert"))):
                # A1111 gives up "Only masked" on a blank mask and runs img2img on the whole picture
                params = {k: v for k, v in params.items() if k != "mask"}
            else:
                stored = self._inputs.store(user_id=principal.user_id, data=data, field="params.mask")
                inputs.append(InputImage(name=stored.name, key=stored.key))
                mask = stored.name
        control_images = {}
        for index, name, value in self._graphs.controlnet_images(params):
            stored = self._inputs.store(user_id=principal.user_id,
                                        data=decode_base64_image(value, field=f"params.{name}"),
                                        field=f"params.{name}")
            inputs.append(InputImage(name=stored.name, key=stored.key))
            control_images[index] = stored.name
        if submission.task == "img2img" and not images:
            raise InvalidInput("img2img needs at least one image in init_images", field="params.init_images")
        checkpoints = visible.names(ENGINE_FOLDERS[ModelType.CHECKPOINT])
        preferred = self._default_checkpoint_for(principal) if self._default_checkpoint_for else None
        default = preferred if preferred in checkpoints else (checkpoints[0] if checkpoints else None)
        overrides = params.get("override_settings")
        if isinstance(overrides, Mapping):
            params = {**params, "override_settings": self._models.resolve_titles(overrides, visible)}
        compiled = self._graphs.compile_a1111(
            submission.task, params, default_checkpoint=default,
            input_images=images, mask_image=mask,
            lora_names=visible.names(ENGINE_FOLDERS[ModelType.LORA]),
            upscaler_names=visible.names(ENGINE_FOLDERS[ModelType.UPSCALER]),
            control_images=control_images, controlnet_names=visible.names(ENGINE_FOLDERS[ModelType.CONTROLNET]),
        )
        public = {k: v for k, v in compiled.params.items() if k not in ("init_images", "mask")}
        return compiled.graph, replace(
            summary, task=submission.task, seed=compiled.seed, all_seeds=tuple(compiled.all_seeds), params=public,
            prompt=str(params.get("prompt") or "")[:500],
            width=compiled.params.get("width"), height=compiled.params.get("height"))

    def _check_work(self, graph: Mapping[str, Any], inputs: list[InputImage], *, field: str) -> None:
        """Refuse a graph whose samplers and VAE passes, at their propagated sizes, exceed the work limit."""
        keys = {i.name: i.key for i in inputs}
        side = int(self._limits.max_image_pixels ** 0.5)
        estimate = estimate_work(graph, image_size=lambda name: self._inputs.size(keys[name]) if name in keys
                                 else (side, side))
        limit = self._limits.max_work_per_request
        largest = estimate.largest()
        if estimate.total <= limit or largest is None:
            return
        raise InvalidInput(
            f"request too large: {largest.describe()} (width × height × batch × steps); the whole request is "
            f"{estimate.total}, the limit {limit} (SDFLEET_MAX_WORK_PER_REQUEST)", field=field,
            details={"node_id": largest.node_id, "class_type": largest.class_type, "work": estimate.total,
                     "limit": limit, "nodes": {n.node_id: n.work for n in estimate.nodes}})

    def _graph_inputs(self, principal: Principal, graph: Mapping[str, Any], *, known: set[str]) -> list[InputImage]:
        found = []
        for node_id, node in graph.items():
            if not isinstance(node, Mapping) or node.get("class_type") not in ("LoadImage", "LoadImageMask"):
                continue
            name = (node.get("inputs") or {}).get("image")
            if not isinstance(name, str) or name in known:
                continue
            key = self._inputs.key_for(user_id=principal.user_id, name=name)
            if key is None:
                raise InvalidInput(f"node {node_id}: image {name!r} was not uploaded", field="graph")
            found.append(InputImage(name=name, key=key))
            known.add(name)
        return found

    def upload_input(self, principal: Principal, data: bytes) -> dict[str, Any]:
        """Store an input image for later graphs; returns its name."""
        authorize(principal, Permission.INFERENCE_ALL)
        stored = self._inputs.store(user_id=principal.user_id, data=data, field="image")
        return {"name": stored.name, "width": stored.width, "height": stored.height}

    # Reading
    def get(self, principal: Principal, job_id: str) -> Job:
        """The caller's job; anyone else's is not found."""
        return fetch_owned(principal, Permission.INFERENCE_ALL, job_id, fetch=self._queue.get, what="inference",
                           accept=lambda job: job.kind is JobKind.GENERATE)

    def list(self, principal: Principal, page: PageRequest, *, status: JobStatus | None = None) -> Page[Job]:
        """The caller's jobs, newest first."""
        authorize(principal, Permission.INFERENCE_ALL)
        return self._queue.list_for_user(principal.user_id, page, status=status, kind=JobKind.INFERENCE)

    def window(self, principal: Principal, *, statuses: tuple[JobStatus, ...] = (), offset: int = 0,
               limit: int = 200, oldest_first: bool = False) -> list[Job]:
        """A window of the caller's jobs in submission order, filtered and cut in SQL."""
        authorize(principal, Permission.INFERENCE_ALL)
        return self._queue.find_for_user(principal.user_id, kind=JobKind.GENERATE, statuses=statuses,
                                         offset=offset, limit=limit, oldest_first=oldest_first)

    def count(self, principal: Principal, *, statuses: tuple[JobStatus, ...]) -> int:
        """How many of the caller's jobs are in `statuses`."""
        authorize(principal, Permission.INFERENCE_ALL)
        return self._queue.count(user_id=principal.user_id, statuses=statuses, kind=JobKind.GENERATE)

    def events_after(self, principal: Principal, job_id: str, seq: int) -> list[JobEvent]:
        """Events of the caller's job after `seq` (SSE resumption)."""
        self.get(principal, job_id)
        return self._queue.events_after(job_id, seq)

    def preview(self, principal: Principal, job_id: str) -> bytes | None:
        """The latest step preview of a running job."""
        self.get(principal, job_id)
        return self._previews.get(job_id)

    def open_output(self, principal: Principal, job_id: str, index: int):
        """(output record, byte iterator) of one output image."""
        job = self.get(principal, job_id)
        output = next((o for o in job.outputs if o.index == index), None)
        if output is None:
            raise NotFound(f"inference {job_id!r} has no output {index}")
        return output, self._objects.open_range(output.key)

    def output_url(self, job: Job, index: int) -> str:
        """The API path of an output image."""
        return f"/api/v1/inferences/{job.id}/outputs/{index}"

    # Changing
    def cancel(self, principal: Principal, job_id: str) -> Job:
        """Queued: cancelled now. Running: the worker stops at its next step."""
        job = self.get(principal, job_id)
        if job.status.finished:
            return job
        job = self._queue.cancel(job_id, now=self._clock())
        if job is None:  # deleted meanwhile
            raise NotFound(f"inference {job_id!r} not found")
        self._notifier.notify(job_topic(job_id))
        return job

    def delete(self, principal: Principal, job_id: str) -> None:
        """Remove the job, its events and its output images (a running job is stopped)."""
        job = self.get(principal, job_id)
        self._queue.delete(job_id)
        self._objects.delete_prefix(f"outputs/{job.id}/")
        self._previews.drop(job_id)
        self._notifier.notify(job_topic(job_id))
