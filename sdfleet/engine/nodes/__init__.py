"""Node classes with ComfyUI's names and inputs, grouped by area."""
