"""Permissions (the seed's names) and the built-in roles."""

from __future__ import annotations

import enum


class Permission(enum.StrEnum):
    """What a role may do; `<resource>:all` as in the AWS solution's permission table."""

    ROLE_ALL = "role:all"  #: create, update and delete roles
    USER_ALL = "user:all"  #: see and manage every user
    ENDPOINT_ALL = "endpoint:all"  #: create, scale and delete endpoints
    INFERENCE_ALL = "inference:all"  #: run inference jobs
    CHECKPOINT_ALL = "checkpoint:all"  #: upload, import and manage model files
    TRAIN_ALL = "train:all"  #: run training jobs
    WORKFLOW_ALL = "workflow:all"  #: publish ComfyUI workflows
    GALLERY_ALL = "gallery:all"  #: browse and download every user's images (the team gallery)
    QUEUE_ALL = "queue:all"  #: see every user's queued and running jobs and cancel them
    STYLE_ALL = "style:all"  #: manage the team's shared prompt styles


PERMISSION_DESCRIPTIONS: dict[Permission, str] = {
    Permission.ROLE_ALL: "Create, update and delete roles.",
    Permission.USER_ALL: "See and manage all users.",
    Permission.ENDPOINT_ALL: "Create, scale and delete endpoints.",
    Permission.INFERENCE_ALL: "Run inference jobs.",
    Permission.CHECKPOINT_ALL: "Upload, import and manage model files.",
    Permission.TRAIN_ALL: "Run training jobs.",
    Permission.WORKFLOW_ALL: "Publish ComfyUI workflows.",
    Permission.GALLERY_ALL: "Browse and download every user's images (the team gallery).",
    Permission.QUEUE_ALL: "See every user's queued and running jobs and cancel them.",
    Permission.STYLE_ALL: "Manage the team's shared prompt styles.",
}

ADMIN_ROLE = "admin"

BUILTIN_ROLES: dict[str, frozenset[Permission]] = {
    ADMIN_ROLE: frozenset(Permission),
    "lead-artist": frozenset({Permission.INFERENCE_ALL, Permission.CHECKPOINT_ALL, Permission.WORKFLOW_ALL,
                              Permission.GALLERY_ALL, Permission.QUEUE_ALL, Permission.STYLE_ALL}),
    "artist": frozenset({Permission.INFERENCE_ALL}),
}


def parse_permissions(values: list[str], *, field: str = "permissions") -> frozenset[Permission]:
    """Turn permission names into `Permission`s, naming the first unknown one."""
    from sdfleet.domain.errors import InvalidInput

    known = {p.value for p in Permission}
    result = set()
    for value in values:
        if value not in known:
            raise InvalidInput(
                f"unknown permission {value!r}; expected one of {', '.join(sorted(known))}", field=field
            )
        result.add(Permission(value))
    return frozenset(result)
