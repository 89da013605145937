"""The audit log's records: who did what to which object, when and from where.

Every action name lives in `AuditAction`; a feature that audits a new kind of change adds its name here."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class AuditAction(enum.StrEnum):
    """What happened; `<object>.<verb>`, so `user.` selects every user change."""

    LOGIN = "auth.login"  #: a password login succeeded
    LOGIN_FAILED = "auth.login_failed"  #: a password login was refused (wrong password, unknown user, rate limit)
    LOGOUT = "auth.logout"  #: a session was ended by its user
    USER_CREATE = "user.create"  #: a user was created
    USER_UPDATE = "user.update"  #: roles, e-mail or disabled changed
    USER_PASSWORD = "user.password"  #: a password was changed (by its user) or reset (by an admin or the CLI)
    USER_PASSWORD_FAILED = "user.password_failed"  #: a password change gave a wrong current password
    USER_DELETE = "user.delete"  #: a user was deleted (and their data, see README)
    ROLE_CREATE = "role.create"  #: a role was created
    ROLE_UPDATE = "role.update"  #: a role's permissions or description changed
    ROLE_DELETE = "role.delete"  #: a role was deleted
    API_KEY_CREATE = "api_key.create"  #: a personal API key was created
    API_KEY_DELETE = "api_key.delete"  #: a personal API key was revoked
    MODEL_CREATE = "model.create"  #: a model was registered (upload, URL import, CLI, demo)
    MODEL_RENAME = "model.rename"  #: a model's name changed
    MODEL_VISIBILITY = "model.visibility"  #: a model's allowed roles changed
    MODEL_DELETE = "model.delete"  #: a model was deleted
    WORKFLOW_PUBLISH = "workflow.publish"  #: a workflow version was published
    WORKFLOW_UNPUBLISH = "workflow.unpublish"  #: a workflow version was withdrawn (publishing it again: publish)
    ENDPOINT_CREATE = "endpoint.create"  #: an endpoint was created
    ENDPOINT_UPDATE = "endpoint.update"  #: an endpoint was scaled or reconfigured
    ENDPOINT_DELETE = "endpoint.delete"  #: an endpoint was deleted


#: field names whose values never reach the audit log (only that they changed)
SECRET_FIELDS = frozenset({"password", "current_password", "password_hash", "token", "key", "secret", "api_key"})


@dataclass(frozen=True)
class AuditTarget:
    """The object an action was done to: its kind (`user`, `role`, `model` …), id and readable name."""

    kind: str
    id: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class AuditEvent:
    """One appended entry. `changes` maps a field to `{"before": …, "after": …}` (secrets: `{"changed": true}`)."""

    id: str
    at: datetime
    action: AuditAction
    target: AuditTarget
    actor_id: str | None = None
    #: the actor's username when it happened (kept after the user is deleted); None = the operator (CLI)
    actor_name: str | None = None
    #: how the actor authenticated: session, api_key, password (a login), or None (CLI)
    credential: str | None = None
    address: str | None = None
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditQuery:
    """Filters of an audit list; None means any. `action` ending in "." is a prefix (`user.`)."""

    actor: str | None = None
    action: str | None = None
    target_kind: str | None = None
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def field_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The fields whose value differs, as `{"field": {"before": …, "after": …}}`; secrets only say they changed."""
    changed: dict[str, dict[str, Any]] = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        changed[name] = {"changed": True} if name in SECRET_FIELDS else {"before": old, "after": new}
    return changed


def without_secrets(value: Any) -> Any:
    """A copy of JSON-like `value` with every secret-named key dropped, at any depth."""
    if isinstance(value, Mapping):
        return {str(k): without_secrets(v) for k, v in value.items() if str(k) not in SECRET_FIELDS}
    if isinstance(value, (list, tuple)):
        return [without_secrets(v) for v in value]
    return value
