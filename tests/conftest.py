"""Shared fixtures."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest_plugins = ["tests.fixtures.databases", "tests.fixtures.s3", "tests.fixtures.runtime", "tests.fixtures.live",
                  "tests.fixtures.browser"]
