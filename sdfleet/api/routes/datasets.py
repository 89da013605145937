"""/api/v1/datasets: training datasets, their images and captions (`train:all`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from sdfleet.api.deps import CurrentPrincipal, PageDep, ServicesDep
from sdfleet.api.schemas.base import ListPage
from sdfleet.api.schemas.datasets import (
    DatasetCreateBody,
    DatasetImagePublic,
    DatasetImageUpdate,
    DatasetPublic,
    DatasetUpdate,
    ImagesAdded,
)
from sdfleet.services.datasets import DatasetCreate

router = APIRouter(prefix="/datasets", tags=["datasets"])
Id = Annotated[str, Path(max_length=64)]
ZIP_MAGIC = b"PK\x03\x04"


@router.post("", response_model=DatasetPublic, status_code=201)
def create_dataset(body: DatasetCreateBody, principal: CurrentPrincipal, services: ServicesDep) -> DatasetPublic:
    """Create an empty dataset; add images with `POST /datasets/{id}/images`."""
    request = DatasetCreate(name=body.name, resolution=body.resolution, description=body.description,
                            allowed_roles=body.allowed_roles)
    return DatasetPublic.of(services.datasets.create(principal, request))


@router.get("", response_model=ListPage[DatasetPublic])
def list_datasets(principal: CurrentPrincipal, services: ServicesDep, page: PageDep,
                  name: Annotated[str | None, Query(max_length=100)] = None) -> ListPage[DatasetPublic]:
    """Datasets you own or that are shared with one of your roles."""
    result = services.datasets.list(principal, page, name=name)
    return ListPage(items=[DatasetPublic.of(d) for d in result.items], next_cursor=result.next_cursor)


@router.get("/{dataset_id}", response_model=DatasetPublic)
def get_dataset(dataset_id: Id, principal: CurrentPrincipal, services: ServicesDep) -> DatasetPublic:
    """One dataset: image count, bytes, content hash."""
    return DatasetPublic.of(services.datasets.get(principal, dataset_id))


@router.patch("/{dataset_id}", response_model=DatasetPublic)
def update_dataset(dataset_id: Id, body: DatasetUpdate, principal: CurrentPrincipal,
                   services: ServicesDep) -> DatasetPublic:
    """Rename, describe or share a dataset (its owner or an admin)."""
    dataset = services.datasets.update(principal, dataset_id, name=body.name, description=body.description,
                                       allowed_roles=body.allowed_roles)
    return DatasetPublic.of(dataset)


@router.delete("/{dataset_id}", status_code=204)
def delete_dataset(dataset_id: Id, principal: CurrentPrincipal, services: ServicesDep) -> Response:
    """Delete a dataset and its images; 409 while a queued or running training uses it."""
    services.datasets.delete(principal, dataset_id)
    return Response(status_code=204)


@router.post("/{dataset_id}/images", response_model=ImagesAdded, status_code=201)
async def add_images(
    dataset_id: Id,
    principal: CurrentPrincipal,
    services: ServicesDep,
    file: Annotated[UploadFile, File(description="An image (PNG, JPEG, WebP) or a zip of images with .txt caption "
                                                 "sidecars and kohya `N_name` repeat folders")],
    caption: Annotated[str | None, Form(max_length=2000)] = None,
    repeats: Annotated[int | None, Form(description="1-100; a zip's `N_name` folders override it")] = None,
) -> ImagesAdded:
    """Add one image (with its caption) or a zip of them; all or nothing, each refusal names its reason."""
    head = await file.read(4)
    await file.seek(0)
    datasets = services.datasets
    if head == ZIP_MAGIC or (file.filename or "").lower().endswith(".zip"):
        added = await run_in_threadpool(datasets.add_zip, principal, dataset_id, file.file, repeats=repeats)
    else:
        data = await file.read(datasets.limits.max_image_bytes + 1)
        added = await run_in_threadpool(datasets.add_image, principal, dataset_id, filename=file.filename or "image",
                                        data=data, caption=caption, repeats=repeats)
    dataset = await run_in_threadpool(datasets.get, principal, dataset_id)
    return ImagesAdded(items=[DatasetImagePublic.of(i) for i in added], dataset=DatasetPublic.of(dataset))


@router.get("/{dataset_id}/images", response_model=ListPage[DatasetImagePublic])
def list_images(dataset_id: Id, principal: CurrentPrincipal, services: ServicesDep,
                page: PageDep) -> ListPage[DatasetImagePublic]:
    """The dataset's images with captions and repeats, in upload order."""
    result = services.datasets.list_images(principal, dataset_id, page)
    return ListPage(items=[DatasetImagePublic.of(i) for i in result.items], next_cursor=result.next_cursor)


@router.get("/{dataset_id}/images/{image_id}", response_model=DatasetImagePublic)
def get_image(dataset_id: Id, image_id: Id, principal: CurrentPrincipal, services: ServicesDep) -> DatasetImagePublic:
    """One image's record."""
    return DatasetImagePublic.of(services.datasets.get_image(principal, dataset_id, image_id))


@router.get("/{dataset_id}/images/{image_id}/content", response_class=Response,
            responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}}})
def get_image_content(dataset_id: Id, image_id: Id, principal: CurrentPrincipal, services: ServicesDep,
                      size: Annotated[int | None, Query(description="a thumbnail fitting size×size (16-512)")] = None
                      ) -> Response:
    """The image as uploaded, or a thumbnail."""
    content = services.datasets.open_image(principal, dataset_id, image_id, thumbnail=size)
    return Response(content.data, media_type=content.content_type, headers={"Cache-Control": "private, max-age=3600"})


@router.patch("/{dataset_id}/images/{image_id}", response_model=DatasetImagePublic)
def update_image(dataset_id: Id, image_id: Id, body: DatasetImageUpdate, principal: CurrentPrincipal,
                 services: ServicesDep) -> DatasetImagePublic:
    """Edit an image's caption or repeats."""
    image = services.datasets.update_image(principal, dataset_id, image_id, caption=body.caption,
                                           repeats=body.repeats)
    return DatasetImagePublic.of(image)


@router.delete("/{dataset_id}/images/{image_id}", status_code=204)
def delete_image(dataset_id: Id, image_id: Id, principal: CurrentPrincipal, services: ServicesDep) -> Response:
    """Remove an image from the dataset."""
    services.datasets.delete_image(principal, dataset_id, image_id)
    return Response(status_code=204)
