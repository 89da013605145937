"""/api/v1/workflows: lead artists publish versioned ComfyUI graphs; artists run them with exposed inputs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path

from sdfleet.api.deps import CurrentPrincipal, ServicesDep
from sdfleet.api.schemas.inference import InferenceAccepted
from sdfleet.api.schemas.workflows import WorkflowCreate, WorkflowList, WorkflowPublic, WorkflowRunCreate
from sdfleet.services.inference import request_hash

router = APIRouter(tags=["workflows"])
Name = Annotated[str, Path(max_length=128)]
Version = Annotated[int, Path(ge=1, le=1_000_000)]


@router.post("/workflows", response_model=WorkflowPublic, status_code=201)
def publish_workflow(body: WorkflowCreate, principal: CurrentPrincipal, services: ServicesDep) -> WorkflowPublic:
    """Publish a graph (needs workflow:all); publishing a name again makes a new current version."""
    version = services.workflows.publish(
        principal, name=body.name, description=body.description, graph=body.graph, ui_graph=body.ui_graph,
        allowed_roles=body.allowed_roles, requires_approval=body.requires_approval,
        inputs=None if body.inputs is None else [i.model_dump(exclude_unset=True) for i in body.inputs])
    return WorkflowPublic.of(version, full=True)


@router.get("/workflows", response_model=WorkflowList)
def list_workflows(principal: CurrentPrincipal, services: ServicesDep) -> WorkflowList:
    """The current version of every published workflow you may see."""
    return WorkflowList(items=[WorkflowPublic.of(v) for v in services.workflows.list(principal)])


@router.get("/workflows/{name}", response_model=WorkflowPublic)
def get_workflow(name: Name, principal: CurrentPrincipal, services: ServicesDep) -> WorkflowPublic:
    """The current version, with its graph."""
    return WorkflowPublic.of(services.workflows.get(principal, name), full=True)


@router.get("/workflows/{name}/versions", response_model=WorkflowList)
def list_versions(name: Name, principal: CurrentPrincipal, services: ServicesDep) -> WorkflowList:
    """Every version, newest first (needs workflow:all)."""
    return WorkflowList(items=[WorkflowPublic.of(v) for v in services.workflows.versions(principal, name)])


@router.post("/workflows/{name}/versions/{version}/unpublish", response_model=WorkflowPublic)
def unpublish_version(name: Name, version: Version, principal: CurrentPrincipal,
                      services: ServicesDep) -> WorkflowPublic:
    """Withdraw a version; the newest other published version becomes current."""
    return WorkflowPublic.of(services.workflows.set_published(principal, name, version, published=False))


@router.post("/workflows/{name}/versions/{version}/publish", response_model=WorkflowPublic)
def republish_version(name: Name, version: Version, principal: CurrentPrincipal,
                      services: ServicesDep) -> WorkflowPublic:
    """Publish a version again and make it current."""
    return WorkflowPublic.of(services.workflows.set_published(principal, name, version, published=True))


@router.post("/workflows/{name}/runs", response_model=InferenceAccepted, status_code=202)
def run_workflow(name: Name, body: WorkflowRunCreate, principal: CurrentPrincipal, services: ServicesDep,
                 idempotency_key: Annotated[str | None, Header(max_length=255)] = None) -> InferenceAccepted:
    """Run the current version with values for its exposed inputs only (an inference job)."""
    job = services.workflows.run(principal, name, inputs=body.inputs, idempotency_key=idempotency_key,
                                 body_hash=request_hash({"workflow": name, **body.model_dump()}))
    return InferenceAccepted(id=job.id, status=job.status.value)


@router.post("/workflows/{name}/versions/{version}/approve", response_model=WorkflowPublic)
def approve_version(name: Name, version: Version, principal: CurrentPrincipal, services: ServicesDep) -> WorkflowPublic:
    """Approve a held version (an admin, or a workflow:all holder other than its author); it becomes current."""
    return WorkflowPublic.of(services.workflows.approve(principal, name, version))
