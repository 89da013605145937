"""sdfleet.services."""
