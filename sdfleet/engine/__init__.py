"""sdfleet.engine."""
