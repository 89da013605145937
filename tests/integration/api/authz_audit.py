"""Authorization matrix entry of the audit log: only a holder of every permission (the admin role) reads it."""

from __future__ import annotations

from tests.integration.api.authz_matrix import Case, Request

#: `permission` value meaning "every permission there is" (the test gives the owner the admin role)
EVERY_PERMISSION = "every"

CASES = {
    ("GET", "/api/v1/audit"): Case(EVERY_PERMISSION, lambda api, o: Request("/api/v1/audit?action=user.")),
}
