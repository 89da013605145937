"""ComfyUI's server vocabulary over sdfleet's inference jobs: prompts, queue, history, jobs, view, uploads.

Everything is per user: a prompt is an inference job of the caller; another user's prompt is not found. The
service answers with records (`ComfyPrompt`, `PromptQueue`, `PromptPage`); `sdfleet/api/comfy/wire.py` shapes
ComfyUI's JSON from them."""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sdfleet.domain.accounts import Principal
from sdfleet.domain.errors import Conflict, InvalidInput, NotFound
from sdfleet.domain.permissions import Permission
from sdfleet.domain.workers import WorkerRecord
from sdfleet.engine.image_admission import DEFAULT_MAX_IMAGE_PIXELS, ImageRejected, open_admitted
from sdfleet.jobs.records import Job, JobStatus
from sdfleet.jobs.spec import extra_of, graph_of
from sdfleet.services.authorization import authorize
from sdfleet.services.comfy_apps import app_marker
from sdfleet.services.graphs import FOLDER_TYPES, GraphInvalid, GraphTools
from sdfleet.services.inference import InferenceService, ModelCatalog, Submission
from sdfleet.services.inputs import MAX_INPUT_BYTES, InputImages, rejected
from sdfleet.services.notifier import Notifier, user_topic

OUTPUT_NAME = re.compile(r"^(?P<job>[0-9a-z]{26})_(?P<index>\d{5})_\.png$")
#: jobs read from SQL per query when a list walks all of a user's jobs
PAGE = 200
FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(frozen=True)
class InputProblem:
    """One thing wrong with a node of a prompt; `input_name` names the input concerned, if any."""

    type: str  #: ComfyUI's error type (`value_not_in_list`, `required_input_missing`, `value_too_large` …)
    message: str
    input_name: str | None = None


@dataclass(frozen=True)
class RejectedNode:
    """A node of a rejected prompt and what is wrong with it."""

    class_type: str | None
    problems: list[InputProblem]
    dependent_outputs: list[str]  #: the prompt's output nodes


class PromptRejected(InvalidInput):
    """A prompt ComfyUI would refuse with a 400: as a whole (`nodes` empty), or for the problems of `nodes` (by
    node id). `sdfleet/api/comfy/wire.py` shapes ComfyUI's `{error, node_errors}` answer from it."""

    code = "invalid_prompt"

    def __init__(self, message: str, *, nodes: Mapping[str, RejectedNode] | None = None) -> None:
        self.nodes = dict(nodes or {})
        super().__init__(message, field="prompt", details={"node_errors": {
            node_id: [{"type": p.type, "message": p.message, "input_name": p.input_name} for p in node.problems]
            for node_id, node in self.nodes.items()}})


@dataclass(frozen=True)
class QueuedPrompt:
    """What POST /prompt answers."""

    prompt_id: str
    number: int


@dataclass(frozen=True)
class ComfyPrompt:
    """One of the caller's jobs as ComfyUI knows it."""

    job: Job
    prompt_id: str  #: the client's id when it sent one, else the job id
    number: int  #: ComfyUI's queue number
    outputs_to_execute: list[str]  #: the graph's output nodes
    extra_data: dict[str, Any]  #: what the client sent beside the prompt (`client_id`, `extra_pnginfo`)


@dataclass(frozen=True)
class PromptQueue:
    """The caller's running and pending prompts (pending oldest first)."""

    running: list[ComfyPrompt]
    pending: list[ComfyPrompt]


@dataclass(frozen=True)
class PromptPage:
    """One page of the caller's prompts and how many match in all."""

    prompts: list[ComfyPrompt]
    offset: int
    limit: int
    total: int


def output_filename(job_id: str, index: int) -> str:
    """The ComfyUI file name of an output image (what /view takes back)."""
    return f"{job_id}_{index:05d}_.png"


def prompt_id_of(job: Job) -> str:
    """The id ComfyUI clients know the job by: theirs when they sent one, else the job id."""
    return str(extra_of(job.spec).get("prompt_id") or job.id)


def number_of(job: Job) -> int:
    """ComfyUI's queue number: the submission time in milliseconds (increasing per user)."""
    return int(job.queued_at.timestamp() * 1000)


class ComfyService:
    """The ComfyUI server API for one caller at a time, on top of InferenceService."""

    def __init__(self, *, inference: InferenceService, catalog: ModelCatalog, graphs: GraphTools,
                 notifier: Notifier, objects, devices: Callable[[], list[WorkerRecord]],
                 clock: Callable[[], datetime], max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                 workflows=None) -> None:
        self._inference = inference
        self._workflows = workflows  # WorkflowService: a prompt sent from a published app runs as the app
        self._catalog = catalog
        self._graphs = graphs
        self._notifier = notifier
        self._objects = objects
        self._devices = devices
        self._clock = clock
        self._inputs = InputImages(objects, max_pixels=max_image_pixels)

    # Prompts
    def submit_prompt(self, principal: Principal, body: Any) -> QueuedPrompt:
        """POST /prompt: validate and queue an API-format graph as an inference job."""
        authorize(principal, Permission.INFERENCE_ALL)
        if not isinstance(body, Mapping):
            raise PromptRejected("the body must be a JSON object with a `prompt`")
        graph = body.get("prompt")
        if not isinstance(graph, dict) or not graph:
            raise PromptRejected("no prompt: `prompt` must be an API-format graph object")
        client_id = body.get("client_id")
        prompt_id = body.get("prompt_id")
        extra_data = body.get("extra_data") if isinstance(body.get("extra_data"), Mapping) else {}
        for name, value in (("client_id", client_id), ("prompt_id", prompt_id)):
            if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 128):
                raise PromptRejected(f"{name} must be a string of 1-128 characters")
        pnginfo = extra_data.get("extra_pnginfo")
        extra = {"client_id": client_id, "prompt_id": prompt_id or None,
                 "extra_pnginfo": pnginfo if isinstance(pnginfo, Mapping) else None,
                 "outputs_to_execute": self.output_nodes(graph)}
        idempotency_key = f"comfy:{prompt_id}" if prompt_id else None
        try:
            job = self._run_app(principal, extra_data, graph=graph, extra=extra, idempotency_key=idempotency_key)
            if job is None:
                job = self._inference.submit(principal, Submission(
                    graph=graph, source="comfy", extra=extra, idempotency_key=idempotency_key))
        except GraphInvalid as exc:
            if not exc.node_errors:  # a whole-graph problem (no output node, too many nodes)
                raise PromptRejected(exc.message) from None
            raise PromptRejected(str(exc), nodes=self._rejected_nodes(graph, {
                node_id: [InputProblem(e["type"], e["message"], e.get("input_name")) for e in items]
                for node_id, items in exc.node_errors.items()})) from None
        except InvalidInput as exc:
            node_id = exc.details.get("node_id")
            if node_id in graph:  # a limit one node breaks (work): ComfyUI's frontend marks that node
                raise PromptRejected(exc.message, nodes=self._rejected_nodes(graph, {node_id: [
                    InputProblem("value_too_large", exc.message)]})) from None
            raise PromptRejected(exc.message) from None
        self._notifier.notify(user_topic(principal.user_id))
        return QueuedPrompt(prompt_id=prompt_id_of(job), number=number_of(job))

    def _run_app(self, principal: Principal, extra_data: Mapping[str, Any], *, graph: dict[str, Any],
                 extra: dict[str, Any], idempotency_key: str | None) -> Job | None:
        """Queue a prompt sent from a published app (its workflow carries the app's marker) as a run of that
        app: only its exposed inputs change, its models are the pinned ones. None for any other prompt."""
        marker = app_marker(extra_data)
        if marker is None or self._workflows is None:
            return None
        name, version = marker
        try:
            return self._workflows.run_app(principal, name, version=version, graph=graph, extra=extra,
                                           idempotency_key=idempotency_key)
        except NotFound:
            raise PromptRejected(f"app {name!r} is not published for you (it was withdrawn, or your roles "
                                 "do not include it)") from None
        except Conflict as exc:
            raise PromptRejected(exc.message) from None

    def _rejected_nodes(self, graph: Mapping[str, Any],
                        problems: Mapping[str, list[InputProblem]]) -> dict[str, RejectedNode]:
        outputs = self.output_nodes(graph)
        nodes = {}
        for node_id, items in problems.items():
            node = graph.get(node_id)
            nodes[node_id] = RejectedNode(class_type=node.get("class_type") if isinstance(node, Mapping) else None,
                                          problems=items, dependent_outputs=outputs)
        return nodes

    def output_nodes(self, graph: Mapping[str, Any]) -> list[str]:
        """Ids of the graph's output nodes (SaveImage, PreviewImage …)."""
        found = []
        for node_id, node in graph.items():
            definition = self._graphs.registry.get(node.get("class_type")) if isinstance(node, Mapping) else None
            if definition is not None and definition.spec.output_node:
                found.append(str(node_id))
        return found

    def find(self, principal: Principal, prompt_id: str) -> Job:
        """The caller's job known to ComfyUI clients as `prompt_id`."""
        if isinstance(prompt_id, str) and len(prompt_id) == 26:
            try:
                return self._inference.get(principal, prompt_id)
            except NotFound:
                pass
        for job in self.each(principal):
            if prompt_id_of(job) == prompt_id:
                return job
        raise NotFound(f"prompt {prompt_id!r} not found")

    def recent(self, principal: Principal, *, limit: int = PAGE) -> list[Job]:
        """The caller's newest inference jobs."""
        return self._inference.window(principal, limit=limit)

    def each(self, principal: Principal, *, statuses: tuple[JobStatus, ...] = (),
             oldest_first: bool = False) -> Iterator[Job]:
        """Every one of the caller's jobs in `statuses` (none: all), read from SQL a page at a time."""
        offset = 0
        while True:
            page = self._inference.window(principal, statuses=statuses, offset=offset, limit=PAGE,
                                          oldest_first=oldest_first)
            yield from page
            if len(page) < PAGE:
                return
            offset += PAGE

    # Queue
    def prompt(self, job: Job) -> ComfyPrompt:
        """A job as ComfyUI knows it."""
        extra = extra_of(job.spec)
        extra_data = {"client_id": extra.get("client_id")}
        if extra.get("extra_pnginfo"):
            extra_data["extra_pnginfo"] = extra["extra_pnginfo"]
        outputs = extra.get("outputs_to_execute") or self.output_nodes(graph_of(job.spec))
        return ComfyPrompt(job=job, prompt_id=prompt_id_of(job), number=number_of(job), outputs_to_execute=outputs,
                           extra_data=extra_data)

    def queue(self, principal: Principal) -> PromptQueue:
        """GET /queue: the caller's running and pending prompts."""
        running = self.each(principal, statuses=(JobStatus.RUNNING,))
        pending = self.each(principal, statuses=(JobStatus.QUEUED,), oldest_first=True)
        return PromptQueue(running=[self.prompt(j) for j in running], pending=[self.prompt(j) for j in pending])

    def queue_remaining(self, principal: Principal) -> int:
        """How many of the caller's prompts are queued or running."""
        return self._inference.count(principal, statuses=(JobStatus.QUEUED, JobStatus.RUNNING))

    def change_queue(self, principal: Principal, body: Any) -> None:
        """POST /queue: `{clear: true}` drops the caller's pending prompts; `{delete: [ids]}` drops those."""
        authorize(principal, Permission.INFERENCE_ALL)
        body = body if isinstance(body, Mapping) else {}
        if body.get("clear"):
            for job in list(self.each(principal, statuses=(JobStatus.QUEUED,))):
                self._inference.delete(principal, job.id)
        for prompt_id in self._ids(body.get("delete")):
            try:
                job = self.find(principal, prompt_id)
            except NotFound:
                continue
            if job.status is JobStatus.QUEUED:
                self._inference.delete(principal, job.id)
        self._notifier.notify(user_topic(principal.user_id))

    @staticmethod
    def _ids(value: Any) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(value) > 1000:
            raise InvalidInput("delete must be a list of prompt ids", field="delete")
        return value

    def interrupt(self, principal: Principal, body: Any) -> None:
        """POST /interrupt: stop the given prompt if it is running (upstream leaves a queued one alone), or all
        the caller's running prompts."""
        authorize(principal, Permission.INFERENCE_ALL)
        prompt_id = body.get("prompt_id") if isinstance(body, Mapping) else None
        if isinstance(prompt_id, str) and prompt_id:
            try:
                job = self.find(principal, prompt_id)
            except NotFound:
                return
            if job.status is JobStatus.RUNNING:
                self._inference.cancel(principal, job.id)
            return
        for job in list(self.each(principal, statuses=(JobStatus.RUNNING,))):
            self._inference.cancel(principal, job.id)

    def cancel(self, principal: Principal, prompt_id: str) -> None:
        """POST /jobs/{id}/cancel."""
        self._inference.cancel(principal, self.find(principal, prompt_id).id)

    # History
    def history(self, principal: Principal, *, max_items: int | None = None) -> list[ComfyPrompt]:
        """GET /history: the caller's finished prompts (the newest `max_items`), oldest first as upstream."""
        authorize(principal, Permission.INFERENCE_ALL)
        if max_items is None:
            finished = list(self.each(principal, statuses=FINISHED))
        else:
            finished = self._inference.window(principal, statuses=FINISHED, limit=max(0, max_items))
        return [self.prompt(j) for j in reversed(finished)]

    def history_of(self, principal: Principal, prompt_id: str) -> ComfyPrompt | None:
        """GET /history/{id}: None until the prompt finished (and for unknown ids, as upstream)."""
        try:
            job = self.find(principal, prompt_id)
        except NotFound:
            return None
        return self.prompt(job) if job.status.finished else None

    def change_history(self, principal: Principal, body: Any) -> None:
        """POST /history: `{clear: true}` or `{delete: [ids]}` removes finished prompts and their images."""
        authorize(principal, Permission.INFERENCE_ALL)
        body = body if isinstance(body, Mapping) else {}
        if body.get("clear"):
            for job in list(self.each(principal, statuses=FINISHED)):
                self._inference.delete(principal, job.id)
        for prompt_id in self._ids(body.get("delete")):
            try:
                job = self.find(principal, prompt_id)
            except NotFound:
                continue
            if job.status.finished:
                self._inference.delete(principal, job.id)

    # Jobs API
    def jobs(self, principal: Principal, *, statuses: tuple[JobStatus, ...], offset: int, limit: int,
             ascending: bool) -> PromptPage:
        """GET /jobs: the caller's prompts in `statuses` (none: all)."""
        authorize(principal, Permission.INFERENCE_ALL)
        wanted = statuses or tuple(JobStatus)
        total = self._inference.count(principal, statuses=wanted)
        page = self._inference.window(principal, statuses=wanted, offset=offset, limit=limit, oldest_first=ascending)
        return PromptPage(prompts=[self.prompt(j) for j in page], offset=offset, limit=limit, total=total)

    def job(self, principal: Principal, prompt_id: str) -> ComfyPrompt:
        """GET /jobs/{id}."""
        return self.prompt(self.find(principal, prompt_id))

    # Files
    def view(self, principal: Principal, *, filename: str, kind: str, subfolder: str = "") -> tuple[str, Iterator[bytes]]:
        """(content type, bytes) of one of the caller's output or input images."""
        authorize(principal, Permission.INFERENCE_ALL)
        if subfolder:
            raise NotFound(f"image {subfolder}/{filename} not found")
        if kind in ("output", "temp"):
            match = OUTPUT_NAME.match(filename or "")
            if match is None:
                raise NotFound(f"image {filename!r} not found")
            output, chunks = self._inference.open_output(principal, match["job"], int(match["index"]))
            return output.content_type, chunks
        if kind == "input":
            key = self._inputs.key_for(user_id=principal.user_id, name=filename)
            if key is None:
                raise NotFound(f"input image {filename!r} not found")
            return "image/png", self._objects.open_range(key)
        raise InvalidInput(f"type must be output, input or temp, got {kind!r}", field="type")

    def upload_image(self, principal: Principal, data: bytes) -> str:
        """POST /upload/image: store an input image; its name (its content hash)."""
        return self._inference.upload_input(principal, data)["name"]

    def upload_mask(self, principal: Principal, data: bytes, *, original: Any) -> str:
        """POST /upload/mask: the mask's alpha applied to the original input image, stored as a new input."""
        authorize(principal, Permission.INFERENCE_ALL)
        if not isinstance(original, Mapping) or not isinstance(original.get("filename"), str):
            raise InvalidInput("original_ref must be an object with the original image's filename",
                               field="original_ref")
        key = self._inputs.key_for(user_id=principal.user_id, name=original["filename"])
        if key is None or original.get("type", "input") != "input":
            raise NotFound(f"input image {original.get('filename')!r} not found")
        if len(data) > MAX_INPUT_BYTES:
            raise InvalidInput(f"image is larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB", field="image")
        limit = self._inputs.max_pixels
        try:
            with open_admitted(data, max_pixels=limit) as mask, \
                    open_admitted(self._objects.read_bytes(key), max_pixels=limit) as base:
                combined = base.convert("RGBA")
                alpha = mask.convert("RGBA").getchannel("A").resize(combined.size)
                combined.putalpha(alpha)
                out = io.BytesIO()
                combined.save(out, format="PNG")
        except ImageRejected as exc:
            raise rejected(exc, field="image") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise InvalidInput("image is not a readable mask image", field="image") from exc
        return self.upload_image(principal, out.getvalue())

    # Discovery
    def model_names(self, principal: Principal) -> dict[str, list[str]]:
        """The model names per engine folder that the caller may use."""
        return {folder: self._catalog.visible_names(principal, t.value) for folder, t in FOLDER_TYPES.items()}

    def object_info(self, principal: Principal, class_type: str | None = None) -> dict[str, Any]:
        """GET /object_info[/{class}]: node definitions with the caller's model lists."""
        authorize(principal, Permission.INFERENCE_ALL)
        info = self._graphs.object_info(self.model_names(principal))
        if class_type is None:
            return info
        return {class_type: info[class_type]} if class_type in info else {}

    def models(self, principal: Principal, folder: str | None = None) -> list[Any]:
        """GET /models (folder names) and /models/{folder} (names in it)."""
        authorize(principal, Permission.INFERENCE_ALL)
        names = self.model_names(principal)
        if folder is None:
            return sorted(names)
        if folder not in names:
            raise NotFound(f"model folder {folder!r} not found")
        return names[folder]

    def devices(self, principal: Principal) -> list[WorkerRecord]:
        """GET /system_stats: the fleet's live workers (ComfyUI lists them as devices)."""
        authorize(principal, Permission.INFERENCE_ALL)
        return [w for w in self._devices() if w.revoked_at is None and w.status != "gone"]

    @staticmethod
    def new_client_id() -> str:
        """A session id for a WebSocket client that did not name one."""
        return uuid.uuid4().hex
