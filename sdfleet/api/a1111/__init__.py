"""The AUTOMATIC1111-compatible API, `/sdapi/v1`, per user and queued on the fleet."""
