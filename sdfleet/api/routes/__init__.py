"""Native API routes under /api/v1."""
