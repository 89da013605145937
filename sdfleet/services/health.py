"""Health: asks each backing service whether it answers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class HealthReport:
    """Per-check result; `ok` only when every check passed."""

    ok: bool
    checks: dict[str, str]


class HealthService:
    """Runs named checks; a check raises to report a problem."""

    def __init__(self, checks: dict[str, Callable[[], None]]) -> None:
        self._checks = checks

    def report(self) -> HealthReport:
        results: dict[str, str] = {}
        for name, check in self._checks.items():
            try:
                check()
                results[name] = "ok"
            except Exception as exc:  # a health check reports every failure, whatever its type
                results[name] = f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        return HealthReport(ok=all(v == "ok" for v in results.values()), checks=results)
