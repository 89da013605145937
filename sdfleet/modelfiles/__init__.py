"""sdfleet.modelfiles."""
