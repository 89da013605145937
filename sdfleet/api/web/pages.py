"""The HTML pages: generate, gallery, models, endpoints, settings (signed-in users only)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from sdfleet.api.deps import SESSION_COOKIE, ServicesDep
from sdfleet.api.web.templating import NAV, page_context, templates
from sdfleet.domain.accounts import Principal
from sdfleet.domain.audit import AuditAction
from sdfleet.domain.errors import Unauthenticated
from sdfleet.domain.permissions import Permission
from sdfleet.engine.sampler_names import A1111_SAMPLERS, A1111_SCHEDULERS

router = APIRouter(include_in_schema=False)
TEMPLATES = {"/": "generate.html", "/gallery": "gallery.html", "/queue": "queue.html", "/workflows": "workflows.html", "/models": "models.html",
             "/train": "train.html",
             "/endpoints": "endpoints.html", "/settings": "settings.html"}


def _principal(request: Request, services) -> Principal | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    try:
        return services.auth.authenticate(cookie)
    except Unauthenticated:
        return None


def _render(request: Request, services, path: str, **extra) -> Response:
    principal = _principal(request, services)
    if principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)
    item = next(i for i in NAV if i.path == path)
    context = page_context(request, principal, active=path, theme=services.preferences.theme(principal), **extra)
    if item.permission is not None and not principal.can(item.permission):
        context["needed"] = item.permission.value
        context["title"] = item.label
        return templates.TemplateResponse(request, "forbidden.html", context, status_code=403)
    response = templates.TemplateResponse(request, TEMPLATES[path], context)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/", response_class=HTMLResponse)
def generate_page(request: Request, services: ServicesDep) -> Response:
    """txt2img, img2img and inpaint with live progress."""
    return _render(request, services, "/", samplers=list(A1111_SAMPLERS), schedulers=["Automatic", *A1111_SCHEDULERS])


@router.get("/gallery", response_class=HTMLResponse)
def gallery_page(request: Request, services: ServicesDep) -> Response:
    """The user's jobs and images."""
    return _render(request, services, "/gallery")


@router.get("/queue", response_class=HTMLResponse)
def queue_page(request: Request, services: ServicesDep) -> Response:
    """Your jobs' places in line; everyone's queued and running jobs for `queue:all`."""
    return _render(request, services, "/queue")


@router.get("/workflows", response_class=HTMLResponse)
def workflows_page(request: Request, services: ServicesDep) -> Response:
    """Published workflows, run from a form of their exposed inputs."""
    return _render(request, services, "/workflows")


@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request, services: ServicesDep) -> Response:
    """The model registry (`checkpoint:all`)."""
    return _render(request, services, "/models")


@router.get("/endpoints", response_class=HTMLResponse)
def endpoints_page(request: Request, services: ServicesDep) -> Response:
    """Endpoints and their replicas (`endpoint:all`)."""
    return _render(request, services, "/endpoints")


@router.get("/settings", response_class=HTMLResponse)
def settings_page(request: Request, services: ServicesDep) -> Response:
    """API keys for everyone; users and roles for `user:all` / `role:all`; the audit log for admins."""
    principal = _principal(request, services)
    # The audit log is read by holders of every permission (services.audit.list says so again).
    auditor = principal is not None and frozenset(Permission) <= principal.permissions
    groups: dict[str, list[str]] = {}
    for action in AuditAction:
        groups.setdefault(action.value.split(".", 1)[0], []).append(action.value)
    return _render(request, services, "/settings", auditor=auditor, audit_actions=list(groups.items()))


@router.get("/train", response_class=HTMLResponse)
def train_page(request: Request, services: ServicesDep) -> Response:
    """Datasets, LoRA trainings with a live loss curve, samples and the resulting LoRA (`train:all`)."""
    return _render(request, services, "/train")
