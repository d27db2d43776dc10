"""Shared fixtures."""

from __future__ import annotations

import os

import pytest

# `lowlight` subprocesses keep torch's thread count whatever else the machine runs (cli.cores), so
# that a test's result does not depend on the load; tests/test_cores.py turns it back on
os.environ["LOWLIGHT_FIT_THREADS"] = "0"
# nor fault in half a gigabyte of heap while starting (cli.heap): the suite's many small `lowlight`
# subprocesses would pay it in memory and CPU for nothing; tests/test_heap.py tests it
os.environ["LOWLIGHT_WARM_HEAP"] = "0"


@pytest.fixture()
def no_hub(tmp_path, monkeypatch):
    """No network and an empty weights cache: only bundled or explicit weights can be found."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LOWLIGHT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LOWLIGHT_DEBUG", raising=False)
