"""Shared fixtures."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest_plugins = ["tests.fixtures.databases", "tests.fixtures.s3", "tests.fixtures.runtime", "tests.fixtures.live",
                  "tests.fixtures.browser"]


def pytest_collection_modifyitems(config, items) -> None:
    """Under pytest-xdist (`--dist loadgroup`), the tests on the session's Ray cluster share one worker: a second
    cluster would cost the 2-core box more than the parallelism gains."""
    import pytest

    for item in items:
        if "ray_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("ray"))
