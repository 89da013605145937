"""Authorization matrix entry of /metrics: a holder of every permission (or the metrics token, tested apart)."""

from __future__ import annotations

from tests.integration.api.authz_audit import EVERY_PERMISSION
from tests.integration.api.authz_matrix import Case, Request

CASES = {
    ("GET", "/metrics"): Case(EVERY_PERMISSION, lambda api, o: Request("/metrics")),
}
