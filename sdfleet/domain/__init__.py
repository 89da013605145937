"""sdfleet.domain."""
