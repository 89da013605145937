"""sdfleet.api."""
