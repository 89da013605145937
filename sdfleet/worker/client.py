"""HTTP client of the worker protocol (`/api/v1/worker/…`). The worker's only link to the server."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
from pydantic import BaseModel

from sdfleet import __version__
from sdfleet.jobs.records import ModelLoad, ProgressPhase
from sdfleet.jobs.wire import (
    ClaimedJob,
    ClaimRequest,
    CompleteRequest,
    FailRequest,
    HeartbeatAnswer,
    HeartbeatRequest,
    ModelLoadReport,
    OutputDescription,
    TokenRequest,
    WorkerAssignment,
    WorkerReport,
)


class LeaseLost(Exception):
    """The server refused our fencing token: another worker owns the job now (or it was deleted)."""


class InputMissing(Exception):
    """An input image of the job is no longer stored on the server (410)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"input image {name!r} is no longer stored on the server")
        self.name = name


class ServerError(Exception):
    """The server answered something unexpected."""


class ModelMissing(ServerError):
    """The server has no such model for this worker (404: not pinned by a job it holds; 410: its file is gone)."""

    def __init__(self, sha256: str, status: int) -> None:
        super().__init__(f"model {sha256} is not available to this worker ({status})")
        self.sha256 = sha256


class TokenRefused(Exception):
    """The server refused the worker token (401): it was revoked, or the worker deleted. Retrying cannot help."""


class WorkerClient:
    """Thin, typed calls over one httpx connection pool."""

    def __init__(self, server: str, token: str, *, timeout: float = 30.0) -> None:
        self._http = httpx.Client(
            base_url=server.rstrip("/") + "/api/v1/worker",
            headers={"Authorization": f"Bearer {token}", "User-Agent": f"sdfleet-worker/{__version__}"},
            timeout=httpx.Timeout(timeout, connect=10.0),
        )

    def close(self) -> None:
        self._http.close()

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.status_code == 401:
            raise TokenRefused(f"the server refused this worker's token ({response.text[:200]})")
        if response.status_code == 409:
            raise LeaseLost(response.text[:300])
        if response.status_code == 404 and "/jobs/" in str(response.request.url):
            raise LeaseLost(response.text[:300])
        if response.status_code >= 400:
            raise ServerError(f"{response.request.method} {response.request.url.path}: "
                              f"{response.status_code} {response.text[:300]}")
        return response

    def _post(self, path: str, message: BaseModel, **kwargs: Any) -> httpx.Response:
        return self._check(self._http.post(path, json=message.model_dump(mode="json", exclude_none=True), **kwargs))

    def report(self, *, status: str, device: str, loaded_models: list[str], info: dict) -> None:
        self._post("/report", WorkerReport(status=status, device=device, loaded_models=loaded_models, info=info))

    def assignment(self) -> WorkerAssignment:
        """The worker's endpoint and the models to load before claiming."""
        return WorkerAssignment.model_validate(self._check(self._http.get("/assignment")).json())

    def claim(self, *, wait_seconds: float) -> ClaimedJob | None:
        r = self._post("/claim", ClaimRequest(wait_seconds=wait_seconds), timeout=wait_seconds + 30)
        if r.status_code == 204:
            return None
        return ClaimedJob.model_validate(r.json())

    def heartbeat(self, job: ClaimedJob, *, value: int | None = None, maximum: int | None = None,
                  node_id: str | None = None, preview_png: bytes | None = None,
                  metrics: dict[str, float] | None = None, loading_model: str | None = None) -> bool:
        """Extend the lease; True when the owner asked to cancel. `loading_model` names the model being loaded
        (the `loading_model` phase, sent before the first step instead of one)."""
        body = HeartbeatRequest(fencing_token=job.fencing_token)
        if loading_model is not None:
            body = body.model_copy(update={"phase": ProgressPhase.LOADING_MODEL.value, "model": loading_model[:255]})
        elif value is not None and maximum is not None:
            body = body.model_copy(update={"value": value, "max": maximum, "node_id": node_id,
                                           "metrics": metrics or None})
        if preview_png:
            body = body.model_copy(update={"preview_png_base64": base64.b64encode(preview_png).decode()})
        path = f"/jobs/{job.id}/heartbeat"
        r = self._http.post(path, json=body.model_dump(mode="json", exclude_none=True))
        if r.status_code == 422 and body.phase is not None:
            # a server older than the phase refuses the field: the lease still needs its beat
            r = self._http.post(path, json=body.model_copy(update={"phase": None, "model": None}).model_dump(
                mode="json", exclude_none=True))
        return HeartbeatAnswer.model_validate(self._check(r).json()).cancel_requested

    def upload_output(self, job: ClaimedJob, index: int, png: bytes) -> None:
        self._check(self._http.put(f"/jobs/{job.id}/outputs/{index}", params={"fencing_token": job.fencing_token},
                                   content=png, headers={"Content-Type": "image/png"}))

    def complete(self, job: ClaimedJob, *, outputs: list[OutputDescription], info: dict,
                 model_loads: list[ModelLoad] | None = None) -> None:
        loads = [ModelLoadReport.of(load) for load in model_loads] if model_loads is not None else None
        body = CompleteRequest(fencing_token=job.fencing_token, outputs=outputs, info=info, model_loads=loads)
        path = f"/jobs/{job.id}/complete"
        r = self._http.post(path, json=body.model_dump(mode="json", exclude_none=True))
        if r.status_code == 422 and body.model_loads is not None and "model_loads" in r.text:
            # a server older than `model_loads` refuses the field (`extra="forbid"`): the outputs still complete
            r = self._http.post(path, json=body.model_copy(update={"model_loads": None}).model_dump(
                mode="json", exclude_none=True))
        self._check(r)

    def fail(self, job: ClaimedJob, *, code: str, message: str, node_id: str | None = None) -> None:
        self._post(f"/jobs/{job.id}/fail", FailRequest(fencing_token=job.fencing_token, code=code[:64],
                                                       message=message[:4000], node_id=node_id))

    def cancelled(self, job: ClaimedJob) -> None:
        self._post(f"/jobs/{job.id}/cancelled", TokenRequest(fencing_token=job.fencing_token))

    def release(self, job: ClaimedJob, *, reason: str) -> None:
        self._post(f"/jobs/{job.id}/release", TokenRequest(fencing_token=job.fencing_token, reason=reason[:200]))

    def input_image(self, job: ClaimedJob, name: str) -> bytes:
        r = self._http.get(f"/jobs/{job.id}/inputs/{name}", params={"fencing_token": job.fencing_token})
        if r.status_code == 410:
            raise InputMissing(name)
        return self._check(r).content

    def stream_model(self, sha256: str, *, offset: int = 0) -> Iterator[bytes]:
        """Stream a model blob from `offset` (resuming a partial download)."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        with self._http.stream("GET", f"/models/{sha256}", headers=headers, timeout=httpx.Timeout(300, connect=10)) as r:
            if r.status_code == 401:
                raise TokenRefused(f"the server refused this worker's token ({r.read()[:200]!r})")
            if r.status_code in (404, 410):
                raise ModelMissing(sha256, r.status_code)
            if r.status_code not in (200, 206):
                raise ServerError(f"model download {sha256}: {r.status_code}")
            if offset and r.status_code != 206:
                raise ServerError("server ignored the Range header")
            # As the bytes arrive (not in 1 MiB pieces): when the link drops, all that reached this host is in the
            # cache's `.part` file, and the resumed download asks only for the rest.
            yield from r.iter_bytes()

    # Training jobs
    def training_image(self, job: ClaimedJob, sha256: str) -> Iterator[bytes]:
        """Stream an image of the held training's dataset."""
        with self._http.stream("GET", f"/jobs/{job.id}/training/images/{sha256}",
                               params={"fencing_token": job.fencing_token}) as r:
            if r.status_code == 410:
                raise InputMissing(f"dataset image {sha256}")
            self._check(r)
            yield from r.iter_bytes(1 << 20)

    def training_checkpoint(self, job: ClaimedJob) -> tuple[int, bytes] | None:
        """(step, bytes) of the last checkpoint an earlier attempt stored, or None."""
        r = self._check(self._http.get(f"/jobs/{job.id}/training/checkpoint",
                                       params={"fencing_token": job.fencing_token}, timeout=600))
        if r.status_code == 204:
            return None
        return int(r.headers["x-step"]), r.content

    def put_training_checkpoint(self, job: ClaimedJob, step: int, data: bytes) -> None:
        self._check(self._http.put(f"/jobs/{job.id}/training/checkpoint", content=data, timeout=600,
                                   params={"fencing_token": job.fencing_token, "step": step}))

    def put_training_artifact(self, job: ClaimedJob, name: str, data: bytes) -> None:
        self._check(self._http.put(f"/jobs/{job.id}/training/artifacts/{name}", content=data, timeout=600,
                                   params={"fencing_token": job.fencing_token}))

    def complete_training(self, job: ClaimedJob, *, info: dict[str, Any]) -> None:
        """Register the uploaded LoRA and finish the training."""
        self._check(self._http.post(f"/jobs/{job.id}/training/complete", timeout=600,
                                    json={"fencing_token": job.fencing_token, "info": info}))
