"""sdfleet.jobs."""
