"""sdfleet.worker."""
