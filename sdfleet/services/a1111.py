"""The A1111 vocabulary on the fleet: queued, awaited generations, progress, interrupt, model lists, png-info.

Everything is per user: a caller sees and stops only their own jobs, and options are theirs alone."""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sdfleet.domain.accounts import Principal
from sdfleet.domain.checkpoints import Checkpoint, ModelType
from sdfleet.domain.errors import Conflict, DomainError, InvalidInput
from sdfleet.domain.pagination import PageRequest
from sdfleet.domain.permissions import Permission
from sdfleet.engine.image_admission import DEFAULT_MAX_IMAGE_PIXELS, ImageRejected, read_png_text
from sdfleet.jobs.records import Job, JobStatus
from sdfleet.services.authorization import authorize
from sdfleet.services.endpoints import worker_memory
from sdfleet.services.inference import InferenceService, Submission
from sdfleet.services.inputs import check_image, decode_base64_image, rejected
from sdfleet.services.notifier import Notifier, job_topic
from sdfleet.services.styles import apply_styles
from sdfleet.services.user_options import UserOptionsService, model_title
from sdfleet.worker.memory import ram_bytes

VERSION = "sdfleet"
#: the engine's A1111 compiler names iteration k's sampler so (and its hires-fix second pass hr_sample{k})
_SAMPLER_NODE = re.compile(r"^(hr_)?sample(\d+)$")


class GenerationFailed(DomainError):
    """The job behind an A1111 call failed on the fleet; `details` carry the job id and its error."""

    code = "job_failed"


class GenerationTimedOut(DomainError):
    """No worker finished the job in time; it was cancelled."""

    code = "timeout"


@dataclass(frozen=True)
class Generation:
    """What txt2img/img2img answer: base64 PNGs and A1111's `info` (as a dict; the API serialises it)."""

    job_id: str
    images: list[str]
    info: dict[str, Any]
    interrupted: bool = False


@dataclass(frozen=True)
class ProgressReport:
    """A1111's `/progress` for the caller's current job (all zeros when they have none)."""

    progress: float = 0.0
    eta_relative: float = 0.0
    state: dict[str, Any] = field(default_factory=dict)
    current_image: str | None = None
    textinfo: str | None = None


@dataclass(frozen=True)
class WaitPolicy:
    """How long an A1111 call waits for its job, and how often it re-reads it (other servers' changes)."""

    timeout_seconds: float = 3600.0
    recheck_seconds: float = 2.0




class A1111Service:
    """Use cases of `/sdapi/v1`; jobs go through InferenceService, so its permission checks and quotas apply."""

    def __init__(self, *, inference: InferenceService, options: UserOptionsService, notifier: Notifier,
                 workers: Callable[[], list], clock: Callable[[], datetime], wait: WaitPolicy | None = None,
                 max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, styles: Any = None) -> None:
        self._inference = inference
        self._styles = styles  # StyleService: `styles` by name
        self._max_image_pixels = max_image_pixels
        self._options = options
        self._notifier = notifier
        self._workers = workers
        self._clock = clock
        self._wait = wait or WaitPolicy()

    # 1. Generation
    def submit(self, principal: Principal, *, task: str, params: Mapping[str, Any]) -> Job:
        """Queue an A1111 payload, the user's VAE and CLIP-skip options filling unset `override_settings`."""
        authorize(principal, Permission.INFERENCE_ALL)
        payload = dict(params)  # the engine's field table judges every field (engine/a1111_fields.py)
        self._apply_styles(principal, payload)
        overrides = payload.get("override_settings") or {}
        if isinstance(overrides, Mapping):
            merged = {**self._options.overrides(principal), **overrides}
            if merged.get("sd_vae") in ("Automatic", None):
                merged.pop("sd_vae", None)
            if merged:
                payload["override_settings"] = merged
        submission = Submission(task=task, params=payload, source="a1111")
        try:
            return self._inference.submit(principal, submission)
        except InvalidInput as exc:
            # The native API names payload fields `params.x`; here the payload is the body itself.
            if exc.field and exc.field.startswith("params."):
                name = exc.field.removeprefix("params.")
                raise InvalidInput(exc.message, field=name, details={**exc.details, "field": name}) from None
            raise

    def _apply_styles(self, principal: Principal, payload: dict[str, Any]) -> None:
        """A1111 applies `styles` to the prompts (and the hires prompts) before anything else."""
        names = payload.pop("styles", None)
        if not names:
            return
        if self._styles is None:
            raise InvalidInput("styles are not available on this server", field="styles")
        styles = self._styles.resolve(principal, names)
        prompt, negative = apply_styles(str(payload.get("prompt") or ""), str(payload.get("negative_prompt") or ""),
                                        styles)
        if payload.get("enable_hr"):
            # A1111 fills an empty hires prompt with the plain one before styling both
            hr_prompt, hr_negative = apply_styles(str(payload.get("hr_prompt") or payload.get("prompt") or ""),
                                                  str(payload.get("hr_negative_prompt")
                                                      or payload.get("negative_prompt") or ""), styles)
            payload.update(hr_prompt=hr_prompt, hr_negative_prompt=hr_negative)
        payload.update(prompt=prompt, negative_prompt=negative)
        payload["styles_applied"] = list(names)

    async def generate(self, principal: Principal, *, task: str, params: Mapping[str, Any],
                       disconnected: Callable[[], Awaitable[bool]] | None = None) -> Generation:
        """Queue the payload and wait (asleep on the job's topic, no thread held) until it finishes."""
        job = await asyncio.to_thread(self.submit, principal, task=task, params=params)
        job = await self._await(principal, job, disconnected)
        if job.status is JobStatus.FAILED:
            error = job.error or {}
            raise GenerationFailed(f"generation failed: {error.get('message') or 'unknown error'}",
                                   details={"job_id": job.id, "error": error})
        return await asyncio.to_thread(self._result, principal, job)

    async def extras(self, principal: Principal, *, images: list[Any], params: Mapping[str, Any],
                     disconnected: Callable[[], Awaitable[bool]] | None = None) -> tuple[list[str], str]:
        """A1111's extras upscale of base64 images, as one job on the fleet; returns (base64 PNGs, info)."""
        job, info = await asyncio.to_thread(self._submit_extras, principal, images, params)
        job = await self._await(principal, job, disconnected)
        if job.status is JobStatus.FAILED:
            error = job.error or {}
            raise GenerationFailed(f"upscale failed: {error.get('message') or 'unknown error'}",
                                   details={"job_id": job.id, "error": error})
        pngs = await asyncio.to_thread(self._output_pngs, principal, job)
        return [base64.b64encode(p).decode() for p in pngs], info

    def _submit_extras(self, principal: Principal, images: list[Any], params: Mapping[str, Any]) -> tuple[Job, str]:
        from sdfleet.engine.a1111_extras import ExtrasInput, compile_extras
        from sdfleet.engine.a1111_fields import InvalidField, UnsupportedField

        authorize(principal, Permission.INFERENCE_ALL)
        field = "imageList" if params.get("imageList") else "image"
        params = {k: v for k, v in params.items() if k != "imageList"}
        stored = []
        for i, value in enumerate(images):
            name = f"{field}[{i}].data" if field == "imageList" else field
            data = decode_base64_image(value, field=name)
            try:
                upload = self._inference.upload_input(principal, data)
            except InvalidInput as exc:
                raise InvalidInput(exc.message, field=name, details={**exc.details, "field": name}) from None
            stored.append(ExtrasInput(upload["name"], upload["width"], upload["height"]))
        upscalers = [m.name for m in self._options.visible_models(principal, ModelType.UPSCALER)]
        try:
            compiled = compile_extras(params, stored, upscaler_names=upscalers)
        except UnsupportedField as exc:
            raise InvalidInput(str(exc), field=exc.name, details={"unsupported": [exc.name]}) from None
        except InvalidField as exc:
            raise InvalidInput(str(exc), field=exc.name) from None
        job = self._inference.submit(principal, Submission(graph=compiled.graph, source="a1111"))
        return job, compiled.info

    def _output_pngs(self, principal: Principal, job: Job) -> list[bytes]:
        pngs = []
        for output in sorted(job.outputs, key=lambda o: o.index):
            _, chunks = self._inference.open_output(principal, job.id, output.index)
            pngs.append(b"".join(chunks))
        return pngs

    async def _await(self, principal: Principal, job: Job, disconnected) -> Job:
        deadline = time.monotonic() + self._wait.timeout_seconds
        while not job.status.finished:
            if disconnected is not None and await disconnected():
                # Nobody can receive the images (A1111 callers hold no job id): free the fleet.
                return await asyncio.to_thread(self._inference.cancel, principal, job.id)
            left = deadline - time.monotonic()
            if left <= 0:
                await asyncio.to_thread(self._inference.cancel, principal, job.id)
                raise GenerationTimedOut(
                    f"no worker finished job {job.id} within {self._wait.timeout_seconds:g} s; it was cancelled",
                    details={"job_id": job.id})
            await self._notifier.wait(job_topic(job.id), min(self._wait.recheck_seconds, left))
            job = await asyncio.to_thread(self._inference.get, principal, job.id)
        return job

    def _result(self, principal: Principal, job: Job) -> Generation:
        pngs = []
        for output in sorted(job.outputs, key=lambda o: o.index):
            _, chunks = self._inference.open_output(principal, job.id, output.index)
            pngs.append(b"".join(chunks))
        infotexts = [read_png_text(png).get("parameters", "") for png in pngs]
        send = (job.summary.params or {}).get("send_images", True) is not False
        return Generation(job_id=job.id, images=[base64.b64encode(p).decode() for p in pngs] if send else [],
                          info=self._info(principal, job, infotexts),
                          interrupted=job.status is JobStatus.CANCELLED)

    def _info(self, principal: Principal, job: Job, infotexts: list[str]) -> dict[str, Any]:
        params = job.summary.params or {}
        batch_size, n_iter = int(params.get("batch_size") or 1), int(params.get("n_iter") or 1)
        seed = int(job.summary.seed or params.get("seed") or 0)
        count = batch_size * n_iter
        # the compiler's seeds (jobs queued before it recorded them: A1111's numbering, one more per image)
        seeds = list(job.summary.all_seeds) or [seed + i for i in range(count)]
        prompt, negative = str(params.get("prompt") or ""), str(params.get("negative_prompt") or "")
        model_name = job.summary.model
        model = next((m for m in job.spec.models if m.folder == "checkpoints" and m.name == model_name), None)
        overrides = params.get("override_settings") or {}
        started = job.started_at or job.queued_at
        return {
            "prompt": prompt, "all_prompts": [prompt] * count,
            "negative_prompt": negative, "all_negative_prompts": [negative] * count,
            "seed": seed, "all_seeds": seeds,
            "subseed": -1, "all_subseeds": [-1] * count, "subseed_strength": 0,
            "width": params.get("width"), "height": params.get("height"),
            "sampler_name": params.get("sampler_name"), "scheduler": params.get("scheduler"),
            "cfg_scale": params.get("cfg_scale"), "steps": params.get("steps"), "batch_size": batch_size,
            "restore_faces": False, "face_restoration_model": None,
            "sd_model_name": Path(model_name).stem if model_name else None,
            "sd_model_hash": model.short_hash if model else None,
            "sd_vae_name": overrides.get("sd_vae"), "sd_vae_hash": None,
            "seed_resize_from_w": -1, "seed_resize_from_h": -1,
            "denoising_strength": params.get("denoising_strength"), "extra_generation_params": {},
            "index_of_first_image": 0, "infotexts": infotexts, "styles": list(params.get("styles_applied") or []),
            "job_timestamp": started.strftime("%Y%m%d%H%M%S"),
            "clip_skip": int(overrides.get("CLIP_stop_at_last_layers") or 1),
            "is_using_inpainting_conditioning": False, "version": VERSION,
            "job_id": job.id, "interrupted": job.status is JobStatus.CANCELLED,
        }

    # 2. The caller's current job
    def current_job(self, principal: Principal) -> Job | None:
        """The caller's newest running job, else their newest queued one."""
        for status in (JobStatus.RUNNING, JobStatus.QUEUED):
            page = self._inference.list(principal, PageRequest(limit=1), status=status)
            if page.items:
                return page.items[0]
        return None

    def progress(self, principal: Principal, *, include_image: bool = True) -> ProgressReport:
        """Progress, ETA and latest preview of the caller's current job; another user's jobs never show."""
        job = self.current_job(principal)
        if job is None:
            return ProgressReport(state=_state(job=None))
        params = job.summary.params or {}
        passes = 2 if params.get("enable_hr") else 1  # A1111 counts a hires pass as a job of its own
        n_iter = max(1, int(params.get("n_iter") or 1)) * passes
        value, maximum = job.progress.value, job.progress.max
        match = _SAMPLER_NODE.match(job.progress.node_id or "")
        job_no = int(match.group(2)) * passes + (1 if match.group(1) else 0) if match else 0
        fraction = min(1.0, (job_no + (value / maximum if maximum else 0.0)) / n_iter)
        eta = 0.0
        if job.started_at is not None and fraction > 0:
            elapsed = (self._clock() - job.started_at).total_seconds()
            eta = max(0.0, elapsed / fraction - elapsed)
        image = None
        if include_image and job.status is JobStatus.RUNNING:
            png = self._inference.preview(principal, job.id)
            image = base64.b64encode(png).decode() if png else None
        state = _state(job=job, job_count=n_iter, job_no=job_no, step=value, steps=maximum)
        return ProgressReport(progress=round(fraction, 4), eta_relative=round(eta, 3), state=state,
                              current_image=image, textinfo=job.status.value.capitalize())

    def interrupt(self, principal: Principal) -> Job | None:
        """Stop the caller's current job (running: at its next step; queued: at once). None when idle."""
        job = self.current_job(principal)
        return None if job is None else self._inference.cancel(principal, job.id)

    def skip(self, principal: Principal) -> Job | None:
        """A1111 skips one image of a batch; a job here cannot drop one image, so skip stops a single-image
        job exactly like interrupt and refuses (409) for a job making several images."""
        job = self.current_job(principal)
        if job is None:
            return None
        params = job.summary.params or {}
        images = int(params.get("batch_size") or 1) * int(params.get("n_iter") or 1)
        if images > 1:
            raise Conflict(f"skip stops a single-image job; job {job.id} makes {images} images and sdfleet cannot "
                           "skip one of them: use /sdapi/v1/interrupt to stop it", details={"job_id": job.id})
        return self._inference.cancel(principal, job.id)

    # 3. Lists and information
    def models(self, principal: Principal, model_type: ModelType) -> list[Checkpoint]:
        """Active models of a type the caller may see."""
        return self._options.visible_models(principal, model_type)

    def titles(self, principal: Principal) -> dict[str, str]:
        """Checkpoint name → A1111 title."""
        return {m.name: model_title(m) for m in self.models(principal, ModelType.CHECKPOINT)}

    def options(self, principal: Principal) -> dict[str, Any]:
        """The caller's options."""
        return self._options.get(principal)

    def set_options(self, principal: Principal, values: Mapping[str, Any]) -> dict[str, Any]:
        """Change the caller's options only (`sd_model_checkpoint` = their default model)."""
        return self._options.set(principal, values)

    def png_info(self, principal: Principal, image_b64: Any) -> dict[str, Any]:
        """A1111's `/png-info` for any signed-in caller, under this server's image limit."""
        return png_info(image_b64, max_pixels=self._max_image_pixels)

    def memory(self) -> dict[str, Any]:
        """A1111's `/memory` shape: this server's RAM; `cuda.system` sums the VRAM the fleet's CUDA workers
        report (torch allocator figures stay zeros), plus an sdfleet `workers` list with each one's memory."""
        workers = [{"endpoint": w.endpoint, "status": w.status, "device": w.device,
                    "loaded_models": len(w.loaded_models or []), "memory": worker_memory(w.info)}
                   for w in self._workers() if getattr(w, "revoked_at", None) is None]
        vram = [w["memory"] for w in workers if w["memory"] and w["status"] != "gone"]
        total = sum(m["vram_total"] for m in vram)
        free = sum(m["vram_free"] for m in vram)
        return {"ram": _ram(), "cuda": {"system": {"free": free, "used": total - free, "total": total},
                                        "active": {"current": 0, "peak": 0},
                                        "allocated": {"current": 0, "peak": 0},
                                        "reserved": {"current": 0, "peak": 0},
                                        "inactive": {"current": 0, "peak": 0},
                                        "events": {"retries": 0, "oom": 0}},
                "workers": workers}


def png_info(image_b64: Any, *, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> dict[str, Any]:
    """A1111's `/png-info`: the `parameters` infotext, the other text chunks, and the parsed parameters.

    The header is admitted like any input image; the text is read chunk by chunk, no pixel is decoded."""
    from sdfleet.engine.infotext import parse_infotext  # torch-free: PIL, numpy and name tables

    data = decode_base64_image(image_b64, field="image")
    check_image(data, field="image", max_pixels=max_pixels)
    try:
        chunks = read_png_text(data)
    except ImageRejected as exc:
        raise rejected(exc, field="image") from None
    info = chunks.pop("parameters", "")
    parsed: dict[str, Any] = {}
    if info:
        text = parse_infotext(info)
        parsed = {"Prompt": text.prompt, "Negative prompt": text.negative_prompt, **text.params}
        width, _, height = str(text.params.get("Size", "")).partition("x")
        if width.isascii() and width.isdigit() and height.isascii() and height.isdigit():
            parsed["Size-1"], parsed["Size-2"] = width, height
    return {"info": info, "items": chunks, "parameters": parsed}


def _state(*, job: Job | None, job_count: int = 0, job_no: int = 0, step: int = 0, steps: int = 0) -> dict:
    started = job.started_at if job is not None else None
    return {"skipped": False, "interrupted": bool(job and job.cancel_requested),
            "job": job.id if job else "", "job_count": job_count if job else 0,
            "job_timestamp": started.strftime("%Y%m%d%H%M%S") if started else "0",
            "job_no": job_no, "sampling_step": step, "sampling_steps": steps}


def _ram() -> dict[str, int]:
    total, free = ram_bytes()
    return {"free": free, "used": total - free, "total": total}

