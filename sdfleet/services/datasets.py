"""Training datasets: create, share, add images (one by one or a zip), edit captions, delete (`train:all`)."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO

from PIL import Image

from sdfleet.domain.accounts import Principal
from sdfleet.domain.datasets import (
    EVERYONE,
    MAX_IMAGES,
    Dataset,
    DatasetImage,
    DatasetRejection,
    check_caption,
    check_dataset_name,
    check_repeats,
    check_resolution,
    content_hash,
    image_key,
    may_see,
    rejected,
)
from sdfleet.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from sdfleet.domain.ids import is_valid_id, new_id
from sdfleet.domain.pagination import Page, PageRequest
from sdfleet.domain.permissions import ADMIN_ROLE, Permission
from sdfleet.domain.validation import check_role_name
from sdfleet.services.authorization import authorize
from sdfleet.services.dataset_intake import AdmittedImage, Candidate, IntakeLimits, admit_image, read_zip
from sdfleet.store.datasets import DuplicateImage, SqlDatasets

log = logging.getLogger("sdfleet.datasets")

#: answers why a dataset may not be deleted now (a queued training uses it …); [] when free
PinCheck = Callable[[str], list[str]]
MAX_DESCRIPTION = 2000
MAX_THUMBNAIL = 512


@dataclass(frozen=True)
class DatasetCreate:
    """What a caller gives to create a dataset (validated by the service)."""

    name: str
    resolution: int = 512
    description: str = ""
    allowed_roles: list[str] | None = None


@dataclass(frozen=True)
class ImageContent:
    """Bytes of a dataset image (or its thumbnail), ready to send."""

    data: bytes
    content_type: str


@dataclass(frozen=True)
class DatasetManifest:
    """A dataset frozen for a training: its hash and every image with caption and repeats."""

    dataset: Dataset
    images: list[DatasetImage]


def _is_admin(principal: Principal) -> bool:
    return ADMIN_ROLE in principal.user.roles


@dataclass
class DatasetService:
    """Dataset use cases; every permission check of datasets is made here."""

    store: SqlDatasets
    objects: object
    clock: Callable[[], datetime]
    limits: IntakeLimits = field(default_factory=IntakeLimits)
    #: hooks consulted by delete (trainings), given by the composition root
    pinned_by: list[PinCheck] = field(default_factory=list)

    # 1. Datasets

    def create(self, principal: Principal, request: DatasetCreate) -> Dataset:
        """A new, empty dataset owned by the caller; private unless `allowed_roles` shares it."""
        authorize(principal, Permission.TRAIN_ALL)
        name = check_dataset_name(request.name)
        resolution = check_resolution(request.resolution)
        description = self._check_description(request.description)
        roles = self._check_roles(request.allowed_roles) if request.allowed_roles is not None else []
        now = self.clock()
        dataset = Dataset(id=new_id(), name=name, user_id=principal.user_id, description=description,
                          resolution=resolution, allowed_roles=tuple(roles), image_count=0, total_bytes=0,
                          content_hash=content_hash([]), created_at=now, updated_at=now)
        added = self.store.add(dataset)
        if added is None:
            raise _name_taken(name)
        return added

    def list(self, principal: Principal, page: PageRequest, *, name: str | None = None) -> Page[Dataset]:
        """Datasets the caller owns or may see through a role (admins: all), oldest first."""
        authorize(principal, Permission.TRAIN_ALL)
        roles = None if _is_admin(principal) else (*principal.user.roles, EVERYONE)
        if name is not None and (len(name) > 100 or any(not c.isprintable() for c in name)):
            raise InvalidInput("name filter must be 1-100 printable characters", field="name")
        return self.store.list(page, user_id=principal.user_id, roles=roles, name=name or None)

    def get(self, principal: Principal, dataset_id: str) -> Dataset:
        """A dataset the caller may see; any other is not found."""
        authorize(principal, Permission.TRAIN_ALL)
        found = None
        if is_valid_id(dataset_id):
            found = self.store.get(dataset_id)
        if found is None or not may_see(dataset=found, user_id=principal.user_id, roles=principal.user.roles,
                                        is_admin=_is_admin(principal)):
            raise NotFound(f"dataset {dataset_id!r} not found")
        return found

    def update(self, principal: Principal, dataset_id: str, *, name: str | None = None,
               description: str | None = None, allowed_roles: list[str] | None = None) -> Dataset:
        """Rename, describe or share a dataset (its owner or an admin)."""
        current = self._editable(principal, dataset_id)
        if name is not None:
            check_dataset_name(name)
        if description is not None:
            description = self._check_description(description)
        roles = self._check_roles(allowed_roles) if allowed_roles is not None else None
        updated = self.store.update(dataset_id, name=name, description=description, allowed_roles=roles,
                                    now=self.clock())
        if updated is None:
            raise _name_taken(name or current.name)
        return updated

    def delete(self, principal: Principal, dataset_id: str) -> None:
        """Delete a dataset and its images (its owner or an admin); 409 while a training uses it."""
        dataset = self._editable(principal, dataset_id)
        reasons = [reason for check in self.pinned_by for reason in check(dataset.id)]
        if reasons:
            raise Conflict(f"dataset {dataset.name!r} is in use: {'; '.join(reasons)}",
                           details={"pinned_by": reasons})
        self.store.delete(dataset.id)
        self.objects.delete_prefix(f"datasets/{dataset.id}/")

    # 2. Images

    def add_image(self, principal: Principal, dataset_id: str, *, filename: str, data: bytes,
                  caption: str | None = None, repeats: int | None = None) -> list[DatasetImage]:
        """Add one image with its caption and repeats."""
        candidate = Candidate(filename=_check_filename(filename), data=data,
                              caption=check_caption(caption or ""), repeats=check_repeats(1 if repeats is None else repeats))
        return self._add(principal, dataset_id, [candidate])

    def add_zip(self, principal: Principal, dataset_id: str, stream: BinaryIO, *,
                repeats: int | None = None) -> list[DatasetImage]:
        """Add every image of a zip: `.txt` sidecars are captions, `N_name` folders set repeats. All or nothing."""
        default = check_repeats(1 if repeats is None else repeats)
        self._editable(principal, dataset_id)
        return self._add(principal, dataset_id, read_zip(stream, limits=self.limits, default_repeats=default))

    def _add(self, principal: Principal, dataset_id: str, candidates: Iterable[Candidate]) -> list[DatasetImage]:
        # 1. Check each image and store its bytes as it comes (memory holds one image at a time).
        dataset = self._editable(principal, dataset_id)
        present = self.store.image_sha256s(dataset.id)
        admitted: list[AdmittedImage] = []
        written: list[str] = []
        try:
            for candidate in candidates:
                image = admit_image(candidate, resolution=dataset.resolution, limits=self.limits)
                if image.sha256 in present:
                    raise rejected(DatasetRejection.DUPLICATE, f"{candidate.filename!r} is already in the dataset "
                                   f"(same bytes)", path=candidate.filename, sha256=image.sha256)
                present.add(image.sha256)
                if len(present) > MAX_IMAGES:
                    raise rejected(DatasetRejection.TOO_MANY, f"a dataset holds at most {MAX_IMAGES} images")
                key = image_key(dataset.id, image.sha256)
                self.objects.put(key, candidate.data, content_type=f"image/{image.format.lower()}")
                written.append(key)
                admitted.append(image)
            if not admitted:
                raise rejected(DatasetRejection.EMPTY, "no images to add")
            # 2. Record them in one transaction.
            now = self.clock()
            records = [DatasetImage(id=new_id(), dataset_id=dataset.id, sha256=a.sha256,
                                    filename=a.candidate.filename, caption=a.candidate.caption,
                                    repeats=a.candidate.repeats, width=a.width, height=a.height,
                                    size=len(a.candidate.data), format=a.format, created_at=now) for a in admitted]
            def check_count(count: int) -> None:
                if count > MAX_IMAGES:
                    raise rejected(DatasetRejection.TOO_MANY, f"a dataset holds at most {MAX_IMAGES} images")

            if not self.store.add_images(dataset.id, records, now=now, check_count=check_count):
                raise NotFound(f"dataset {dataset_id!r} not found")
            return records
        except BaseException as exc:
            self._forget_blobs(dataset.id, written)
            if isinstance(exc, DuplicateImage):  # a concurrent upload added the same bytes first
                raise rejected(DatasetRejection.DUPLICATE, "an image of this upload is already in the dataset") \
                    from None
            raise

    def list_images(self, principal: Principal, dataset_id: str, page: PageRequest) -> Page[DatasetImage]:
        """A visible dataset's images, in upload order."""
        dataset = self.get(principal, dataset_id)
        return self.store.list_images(dataset.id, page)

    def get_image(self, principal: Principal, dataset_id: str, image_id: str) -> DatasetImage:
        """One image of a visible dataset."""
        dataset = self.get(principal, dataset_id)
        found = None
        if is_valid_id(image_id):
            found = self.store.get_image(dataset.id, image_id)
        if found is None:
            raise NotFound(f"image {image_id!r} not found in dataset {dataset_id!r}")
        return found

    def open_image(self, principal: Principal, dataset_id: str, image_id: str, *,
                   thumbnail: int | None = None) -> ImageContent:
        """The image's bytes, or a thumbnail fitting `thumbnail`² (PNG for PNG sources, else JPEG)."""
        image = self.get_image(principal, dataset_id, image_id)
        if thumbnail is not None and not 16 <= thumbnail <= MAX_THUMBNAIL:
            raise InvalidInput(f"size must be 16-{MAX_THUMBNAIL}, got {thumbnail}", field="size")
        data = self.objects.read_bytes(image.key)
        if thumbnail is None:
            return ImageContent(data=data, content_type=image.content_type)
        with Image.open(io.BytesIO(data)) as img:
            img.thumbnail((thumbnail, thumbnail))
            out = io.BytesIO()
            if image.format == "PNG":
                img.save(out, format="PNG")
                return ImageContent(data=out.getvalue(), content_type="image/png")
            img.convert("RGB").save(out, format="JPEG", quality=85)
            return ImageContent(data=out.getvalue(), content_type="image/jpeg")

    def update_image(self, principal: Principal, dataset_id: str, image_id: str, *, caption: str | None = None,
                     repeats: int | None = None) -> DatasetImage:
        """Edit an image's caption or repeats (the dataset's owner or an admin)."""
        self._editable(principal, dataset_id)
        image = self.get_image(principal, dataset_id, image_id)
        caption = check_caption(caption) if caption is not None else None
        repeats = check_repeats(repeats) if repeats is not None else None
        return self.store.update_image(image, caption=caption, repeats=repeats, now=self.clock())

    def delete_image(self, principal: Principal, dataset_id: str, image_id: str) -> None:
        """Remove an image (the dataset's owner or an admin)."""
        self._editable(principal, dataset_id)
        image = self.get_image(principal, dataset_id, image_id)
        self.store.delete_image(image, now=self.clock())
        self.objects.delete(image.key)

    # 3. For trainings

    def manifest(self, principal: Principal, dataset_id: str) -> DatasetManifest:
        """The dataset as it is now, for a training to pin; an empty dataset is refused by name."""
        dataset = self.get(principal, dataset_id)
        images = self.store.all_images(dataset.id)
        if not images:
            raise rejected(DatasetRejection.EMPTY, f"dataset {dataset.name!r} has no images", field="dataset_id")
        return DatasetManifest(dataset=dataset, images=images)

    def open_blob(self, dataset_id: str, sha256: str) -> Iterator[bytes]:
        """Stream an image by hash (no permission check: for workers holding a training of it)."""
        return self.objects.open_range(image_key(dataset_id, sha256))

    # Internals

    def _editable(self, principal: Principal, dataset_id: str) -> Dataset:
        dataset = self.get(principal, dataset_id)
        if dataset.user_id != principal.user_id and not _is_admin(principal):
            raise Forbidden("only the dataset's owner or an admin may change it", details={"field": "dataset_id"})
        return dataset

    def _forget_blobs(self, dataset_id: str, keys: list[str]) -> None:
        """Delete blobs written by a failed upload unless a recorded image (of an earlier upload) uses them."""
        if not keys:
            return
        kept = {image_key(dataset_id, sha) for sha in self.store.image_sha256s(dataset_id)}
        for key in keys:
            if key not in kept:
                with contextlib.suppress(Exception):
                    self.objects.delete(key)

    @staticmethod
    def _check_description(value: object) -> str:
        if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
            raise InvalidInput(f"description must be text of at most {MAX_DESCRIPTION} characters",
                               field="description")
        if any(not c.isprintable() and c not in "\n\t" for c in value):
            raise InvalidInput("description must not contain control characters", field="description")
        return value

    def _check_roles(self, roles: list[str]) -> list[str]:
        if len(roles) > 64:
            raise InvalidInput("allowed_roles may list at most 64 roles", field="allowed_roles")
        names = sorted({r if r == EVERYONE else check_role_name(r, field="allowed_roles") for r in roles})
        wanted = [n for n in names if n != EVERYONE]
        known = self.store.role_names(wanted)
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise InvalidInput(f"unknown role(s) in allowed_roles: {', '.join(unknown)}", field="allowed_roles",
                               details={"roles": unknown})
        return names


def _name_taken(name: str) -> Conflict:
    return Conflict(f"you already have a dataset named {name!r}", details={"field": "name"})


def _check_filename(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or any(not c.isprintable() for c in value):
        raise InvalidInput("the file needs a printable file name", field="file")
    # A relative path is kept (folder uploads name `10_sks dog/1.png`), without `..` or empty segments.
    parts = [p for p in value.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    return "/".join(parts)[-255:] or "image"
