"""sdfleet.store."""
