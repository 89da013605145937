"""ComfyUI at /comfy/ and on ComfyUI's own port: the official frontend, the server API and the WebSocket."""
