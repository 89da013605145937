"""The autoscaler: how many replicas an endpoint wants, from its queue, its policy and how long it was idle."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sdfleet.domain.endpoints import EndpointConfig


@dataclass(frozen=True)
class Load:
    """Jobs of one endpoint: waiting and running."""

    queued: int
    running: int


@dataclass(frozen=True)
class Decision:
    """The replica count the autoscaler wants and why."""

    desired: int
    wanted: int  #: clamp(ceil(work / target), min, max) right now, before the idle delay
    reason: str


def wanted_replicas(config: EndpointConfig, load: Load) -> int:
    """clamp(ceil((queued + running) / target_queue_per_replica), min_replicas, max_replicas).

    Running jobs count as work so that a busy replica is never the one scaled away."""
    work = load.queued + load.running
    return max(config.min_replicas, min(config.max_replicas, math.ceil(work / config.target_queue_per_replica)))


class Autoscaler:
    """Scales up at once (from zero as soon as a job arrives); scales down after `idle_seconds` of less work."""

    def __init__(self) -> None:
        self._lower_since: dict[str, float] = {}

    def decide(self, endpoint: str, *, config: EndpointConfig, load: Load, current: int, now: float) -> Decision:
        """The replicas `endpoint` should run now, given `current` running (not draining) replicas."""
        wanted = wanted_replicas(config, load)
        if wanted >= current:
            self._lower_since.pop(endpoint, None)
            reason = "scale up: work waiting" if wanted > current else "steady"
            return Decision(desired=wanted, wanted=wanted, reason=reason)
        if current > config.max_replicas:  # the policy was lowered: no reason to wait
            self._lower_since.pop(endpoint, None)
            return Decision(desired=wanted, wanted=wanted, reason="scale down: max_replicas lowered")
        since = self._lower_since.setdefault(endpoint, now)
        if now - since >= config.idle_seconds:
            self._lower_since.pop(endpoint, None)
            reason = ("scale to zero: idle" if wanted == 0 else "scale down: less work") + \
                f" for {config.idle_seconds:g} s"
            return Decision(desired=wanted, wanted=wanted, reason=reason)
        return Decision(desired=current, wanted=wanted, reason="waiting for idle_seconds before scaling down")

    def forget(self, endpoint: str) -> None:
        """Drop the state of a deleted endpoint."""
        self._lower_since.pop(endpoint, None)
