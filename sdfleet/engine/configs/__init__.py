"""Packaged diffusers configs of the real SD 1.5, SD 2.1 and SDXL base/refiner models."""
