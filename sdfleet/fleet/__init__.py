"""sdfleet.fleet."""
