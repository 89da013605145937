"""sdfleet's own web UI: server-rendered pages and small ES modules calling /api/v1."""
