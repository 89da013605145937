"""Moved to `sdfleet.jobs.records` (the job contract); kept as a re-export while in-flight branches land."""

from sdfleet.jobs.records import (  # noqa: F401
    EventType,
    Job,
    JobEvent,
    JobKind,
    JobOutput,
    JobProgress,
    JobStatus,
    Lease,
)
