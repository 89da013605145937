"""ComfyUI's server routes (`/prompt`, `/queue`, `/history`, `/view`, …), answered per sdfleet user.

Served at `/comfy/api/…` (and `/comfy/…`) on the main app and at `/…` and `/api/…` on ComfyUI's port;
outside the OpenAPI document (they speak ComfyUI's shapes, not sdfleet's envelope)."""

from __future__ import annotations

import json
import posixpath
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from sdfleet.api.comfy import wire
from sdfleet.api.comfy.auth import ComfyPrincipal
from sdfleet.api.deps import ServicesDep
from sdfleet.api.errors import SafeJSONResponse
from sdfleet.api.security_headers import USER_FILE
from sdfleet.domain.errors import InvalidInput
from sdfleet.services.comfy import PromptRejected

EXTENSION_URL = "/extensions/sdfleet/sdfleet.js"
MAX_UPLOAD_BYTES = 32 * 1024 * 1024
router = APIRouter(include_in_schema=False)


MAX_JSON_DEPTH = 64  # ComfyUI graphs and settings nest a handful of levels


async def json_body(request: Request) -> Any:
    """The JSON body, `{}` when empty; malformed or absurdly nested JSON is a 4xx naming the body."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except RecursionError:
        raise InvalidInput(f"the request body nests deeper than {MAX_JSON_DEPTH} levels", field="body") from None
    except ValueError:
        raise InvalidInput("the request body is not valid JSON", field="body") from None
    check_json(value)
    return value


def check_json(value: Any) -> None:
    """Refuse JSON nested deeper than MAX_JSON_DEPTH or holding strings that are not Unicode text (a lone
    surrogate cannot be stored or sent back). Iterative: the value may be deeper than Python recurses."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidInput("the request body has a string that is not valid Unicode (a lone surrogate)",
                                   field="body") from None
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth >= MAX_JSON_DEPTH:
            raise InvalidInput(f"the request body nests deeper than {MAX_JSON_DEPTH} levels", field="body")
        children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children)


# Prompts and queue
@router.get("/prompt")
def prompt_info(principal: ComfyPrincipal, services: ServicesDep) -> dict:
    return {"exec_info": {"queue_remaining": services.comfy.queue_remaining(principal)}}


@router.post("/prompt")
async def post_prompt(request: Request, principal: ComfyPrincipal, services: ServicesDep) -> JSONResponse:
    body = await json_body(request)
    try:
        queued = await run_in_threadpool(services.comfy.submit_prompt, principal, body)
    except PromptRejected as exc:
        return SafeJSONResponse(wire.prompt_rejected(exc), status_code=400)
    return JSONResponse({"prompt_id": queued.prompt_id, "number": queued.number, "node_errors": {}})


@router.get("/queue")
def get_queue(principal: ComfyPrincipal, services: ServicesDep) -> dict:
    return wire.queue(services.comfy.queue(principal))


@router.post("/queue")
async def post_queue(request: Request, principal: ComfyPrincipal, services: ServicesDep) -> Response:
    await run_in_threadpool(services.comfy.change_queue, principal, await json_body(request))
    return Response(status_code=200)


@router.post("/interrupt")
async def interrupt(request: Request, principal: ComfyPrincipal, services: ServicesDep) -> Response:
    await run_in_threadpool(services.comfy.interrupt, principal, await json_body(request))
    return Response(status_code=200)


@router.post("/free")
def free(principal: ComfyPrincipal) -> Response:
    """Workers manage their own model memory; accepted and ignored."""
    return Response(status_code=200)


# History and jobs
@router.get("/history")
def get_history(principal: ComfyPrincipal, services: ServicesDep,
                max_items: Annotated[int | None, Query(ge=0, le=10_000)] = None) -> dict:
    return wire.history(services.comfy.history(principal, max_items=max_items))


@router.get("/history/{prompt_id}")
def get_history_item(prompt_id: str, principal: ComfyPrincipal, services: ServicesDep) -> dict:
    found = services.comfy.history_of(principal, prompt_id)
    return wire.history([found] if found is not None else [])


@router.post("/history")
async def post_history(request: Request, principal: ComfyPrincipal, services: ServicesDep) -> Response:
    await run_in_threadpool(services.comfy.change_history, principal, await json_body(request))
    return Response(status_code=200)


@router.get("/jobs")
def list_jobs(principal: ComfyPrincipal, services: ServicesDep,
              status: Annotated[str | None, Query(max_length=200)] = None,
              offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=500)] = 100,
              sort_order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc") -> dict:
    statuses = [s for s in (status or "").split(",") if s]
    return wire.jobs(services.comfy.jobs(principal, statuses=wire.job_statuses(statuses), offset=offset, limit=limit,
                                         ascending=sort_order == "asc"))


@router.get("/jobs/{prompt_id}")
def get_job(prompt_id: str, principal: ComfyPrincipal, services: ServicesDep) -> dict:
    return wire.job(services.comfy.job(principal, prompt_id))


@router.post("/jobs/{prompt_id}/cancel")
def cancel_job(prompt_id: str, principal: ComfyPrincipal, services: ServicesDep) -> Response:
    services.comfy.cancel(principal, prompt_id)
    return Response(status_code=200)


# Files
@router.get("/view")
def view(principal: ComfyPrincipal, services: ServicesDep, filename: Annotated[str, Query(max_length=300)],
         type: Annotated[str, Query(max_length=16)] = "output",
         subfolder: Annotated[str, Query(max_length=300)] = "") -> StreamingResponse:
    media_type, chunks = services.comfy.view(principal, filename=filename, kind=type, subfolder=subfolder)
    return StreamingResponse(chunks, media_type=media_type,
                             headers={"Cache-Control": "private, max-age=3600",
                                      "Content-Disposition": f'inline; filename="{filename}"'})


@router.post("/upload/image")
async def upload_image(principal: ComfyPrincipal, services: ServicesDep,
                       image: Annotated[UploadFile, File()]) -> dict:
    data = await image.read(MAX_UPLOAD_BYTES + 1)
    return wire.uploaded(await run_in_threadpool(services.comfy.upload_image, principal, data))


@router.post("/upload/mask")
async def upload_mask(principal: ComfyPrincipal, services: ServicesDep, image: Annotated[UploadFile, File()],
                      original_ref: Annotated[str, Form(max_length=2000)]) -> dict:
    data = await image.read(MAX_UPLOAD_BYTES + 1)
    try:
        original = json.loads(original_ref)
    except ValueError:
        raise InvalidInput("original_ref must be JSON", field="original_ref") from None
    return wire.uploaded(await run_in_threadpool(services.comfy.upload_mask, principal, data, original=original))


# Discovery
@router.get("/object_info")
def object_info(principal: ComfyPrincipal, services: ServicesDep) -> dict:
    return services.comfy.object_info(principal)


@router.get("/object_info/{node_class}")
def object_info_one(node_class: str, principal: ComfyPrincipal, services: ServicesDep) -> dict:
    return services.comfy.object_info(principal, node_class)


@router.get("/embeddings")
def embeddings(principal: ComfyPrincipal, services: ServicesDep) -> list:
    names = services.comfy.model_names(principal).get("embeddings", [])
    return [n.rsplit(".", 1)[0] for n in names]


@router.get("/models")
def model_folders(principal: ComfyPrincipal, services: ServicesDep) -> list:
    return services.comfy.models(principal)


@router.get("/models/{folder}")
def model_folder(folder: str, principal: ComfyPrincipal, services: ServicesDep) -> list:
    return services.comfy.models(principal, folder)


@router.get("/internal/folder_paths")
def folder_paths(principal: ComfyPrincipal, services: ServicesDep) -> dict:
    """Where each model folder's files live (the frontend shows it for a workflow's missing models)."""
    return {folder: [f"sdfleet model registry: {folder}"] for folder in services.comfy.models(principal)}


@router.get("/system_stats")
def system_stats(principal: ComfyPrincipal, services: ServicesDep) -> dict:
    return wire.system_stats(services.comfy.devices(principal))


@router.get("/features")
def features(principal: ComfyPrincipal) -> dict:
    return {"supports_preview_metadata": True, "max_upload_size": MAX_UPLOAD_BYTES}


@router.get("/extensions")
def extensions(principal: ComfyPrincipal) -> list:
    return [EXTENSION_URL]


@router.get("/i18n")
def i18n(principal: ComfyPrincipal) -> dict:
    return {}


@router.get("/global_subgraphs")
def global_subgraphs(principal: ComfyPrincipal) -> dict:
    return {}


@router.get("/experiment/models")
def experiment_models(principal: ComfyPrincipal) -> list:
    return []


@router.get("/workflow_templates")
def workflow_templates(principal: ComfyPrincipal) -> dict:
    return {}


# Users and settings
@router.get("/users")
def users(principal: ComfyPrincipal) -> dict:
    """No `users` key: sdfleet's own login identifies users, not ComfyUI's user picker."""
    return {}


@router.post("/users")
def create_user(principal: ComfyPrincipal) -> JSONResponse:
    return JSONResponse({"error": "users are managed by sdfleet (/api/v1/users)"}, status_code=400)


@router.get("/settings")
def get_settings(principal: ComfyPrincipal, services: ServicesDep) -> dict:
    return services.comfy_userdata.settings(principal)


@router.post("/settings")
async def post_settings(request: Request, principal: ComfyPrincipal, services: ServicesDep) -> Response:
    await run_in_threadpool(services.comfy_userdata.update_settings, principal, await json_body(request))
    return Response(status_code=200)


@router.get("/settings/{setting_id}")
def get_setting(setting_id: str, principal: ComfyPrincipal, services: ServicesDep) -> JSONResponse:
    return JSONResponse(services.comfy_userdata.setting(principal, setting_id))


@router.post("/settings/{setting_id}")
async def post_setting(setting_id: str, request: Request, principal: ComfyPrincipal,
                       services: ServicesDep) -> Response:
    value = await json_body(request)
    await run_in_threadpool(services.comfy_userdata.update_setting, principal, setting_id, value)
    return Response(status_code=200)


@router.get("/userdata")
def list_userdata(principal: ComfyPrincipal, services: ServicesDep, dir: Annotated[str, Query(max_length=500)],
                  recurse: bool = False, split: bool = False, full_info: bool = False) -> list:
    files = services.comfy_userdata.list_files(principal, directory=dir, recurse=recurse)
    if full_info:
        return [{"path": f.path, "size": f.size, "modified": f.modified_at.timestamp() * 1000} for f in files]
    if split:
        return [[f.path, *f.path.split("/")] for f in files]
    return [f.path for f in files]


@router.post("/userdata/{file:path}/move/{dest:path}")
def move_userdata(file: str, dest: str, principal: ComfyPrincipal, services: ServicesDep,
                  overwrite: bool = True, full_info: bool = False) -> JSONResponse:
    moved = services.comfy_userdata.move(principal, file, dest, overwrite=overwrite)
    if full_info:
        return JSONResponse({"path": moved.path, "size": moved.size, "modified": moved.modified_at.timestamp() * 1000})
    return JSONResponse(moved.path)


@router.get("/userdata/{file:path}")
def get_userdata(file: str, principal: ComfyPrincipal, services: ServicesDep) -> Response:
    found = services.comfy_userdata.read(principal, file)
    return user_file_response(file, found.content)


#: what user data is served as: never a type a browser would run as a page of this origin
USER_FILE_TYPES = {".json": "application/json", ".css": "text/css", ".txt": "text/plain; charset=utf-8"}


def user_file_response(path: str, content: bytes) -> Response:
    """JSON as JSON; CSS as CSS (index.html links `api/userdata/user.css`, and nosniff makes Chromium insist on
    the type); plain text as text; anything else as bytes. All but JSON download as attachments."""
    suffix = posixpath.splitext(path)[1].lower()
    media = USER_FILE_TYPES.get(suffix, "application/octet-stream")
    headers = {"Content-Security-Policy": USER_FILE, "X-Content-Type-Options": "nosniff",
               "Cache-Control": "private, no-cache"}
    if suffix != ".json":
        name = "".join(c for c in posixpath.basename(path) if c.isascii() and (c.isalnum() or c in "._-")) or "file"
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return Response(content, media_type=media, headers=headers)


@router.post("/userdata/{file:path}")
async def post_userdata(file: str, request: Request, principal: ComfyPrincipal, services: ServicesDep,
                        overwrite: bool = True, full_info: bool = False) -> JSONResponse:
    content = await request.body()
    written = await run_in_threadpool(lambda: services.comfy_userdata.write(principal, file, content,
                                                                            overwrite=overwrite))
    if full_info:
        return JSONResponse({"path": written.path, "size": written.size,
                             "modified": written.modified_at.timestamp() * 1000})
    return JSONResponse(written.path)


@router.delete("/userdata/{file:path}")
def delete_userdata(file: str, principal: ComfyPrincipal, services: ServicesDep) -> Response:
    services.comfy_userdata.delete(principal, file)
    return Response(status_code=204)


# sdfleet additions used by its frontend extension
@router.get("/sdfleet/templates")
def templates(principal: ComfyPrincipal, services: ServicesDep) -> list:
    return [{"name": t.name, "title": t.title, "description": t.description, "graph": t.graph,
             "ui_graph": t.ui_graph, "workflow": t.workflow} for t in services.comfy_templates.list(principal)]


@router.post("/sdfleet/workflows")
async def publish_workflow(request: Request, principal: ComfyPrincipal, services: ServicesDep) -> JSONResponse:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object", field="body")
    version = await run_in_threadpool(lambda: services.workflows.publish(
        principal, name=body.get("name"), description=body.get("description", ""), graph=body.get("graph"),
        ui_graph=body.get("ui_graph"), allowed_roles=body.get("allowed_roles", []), inputs=body.get("inputs"),
        requires_approval=body.get("requires_approval", False)))
    return JSONResponse({"name": version.name, "version": version.version,
                         "approved": not version.awaiting_approval}, status_code=201)


# Custom nodes are out of scope: ComfyUI-Manager gets a clear answer instead of a 404 maze.
@router.api_route("/manager/{rest:path}", methods=["GET", "POST"])
@router.api_route("/customnode/{rest:path}", methods=["GET", "POST"])
@router.api_route("/externalmodel/{rest:path}", methods=["GET", "POST"])
@router.api_route("/snapshot/{rest:path}", methods=["GET", "POST"])
def manager(rest: str) -> JSONResponse:
    return JSONResponse({"error": {"code": "custom_nodes_unsupported",
                                   "message": "sdfleet does not install custom nodes (ComfyUI-Manager is not "
                                              "available); its node set is built in",
                                   "details": {}}}, status_code=501)
