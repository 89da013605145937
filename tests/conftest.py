"""Shared fixtures."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest_plugins = ["tests.fixtures.databases", "tests.fixtures.s3", "tests.fixtures.runtime", "tests.fixtures.live",
                  "tests.fixtures.browser"]


def pytest_collection_modifyitems(config, items) -> None:
    """Under pytest-xdist (`--dist loadgroup`), each test file runs whole on one worker (module-scoped fixtures
    and the order of a file's tests hold as in one process), and every test on the session's Ray cluster shares
    one worker: a second cluster would cost the 2-core box more than the parallelism gains."""
    import pytest

    for item in items:
        ray = "ray_cluster" in getattr(item, "fixturenames", ())
        item.add_marker(pytest.mark.xdist_group("ray" if ray else item.nodeid.split("::")[0]))
