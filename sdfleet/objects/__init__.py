"""sdfleet.objects."""
