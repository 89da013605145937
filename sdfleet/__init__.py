"""sdfleet: a self-hosted, multi-user Stable Diffusion platform."""
__version__ = "0.1.0"
