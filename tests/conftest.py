"""Shared fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture()
def no_hub(tmp_path, monkeypatch):
    """No network and an empty weights cache: only bundled or explicit weights can be found."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LOWLIGHT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LOWLIGHT_DEBUG", raising=False)
