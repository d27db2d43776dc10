"""Images whose decoded pixels would not fit in memory are refused from the header, before decoding."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import lowlight_cli.io.memory as memory
from lowlight_cli.cli.app import app
from lowlight_cli.errors import ImageTooLargeError
from lowlight_cli.io import read_image
from lowlight_cli.io.memory import DECODE_MARGIN, available_memory

from .photos import dark_photo, save_photo

runner = CliRunner()


def declared_png(path: Path, width: int, height: int) -> Path:
    """A small PNG whose header declares ``width`` x ``height`` 8-bit RGB pixels (its data is cut short)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\0" * (1 + 3 * width) * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


def test_mem_available_is_read_from_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       32000000 kB\nMemFree:         1000000 kB\nMemAvailable:   22792744 kB\n")
    assert available_memory(meminfo) == 22792744 * 1024
    meminfo.write_text("MemTotal:       32000000 kB\n")
    assert available_memory(meminfo) is None
    assert available_memory(tmp_path / "missing") is None  # not Linux: no check


def test_declared_giant_is_refused_from_its_header(tmp_path, monkeypatch):
    path = declared_png(tmp_path / "giant.png", 15000, 15000)
    assert path.stat().st_size < 1_000_000
    monkeypatch.setattr(memory, "available_memory", lambda: 1_000_000_000)
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match=r"15000x15000 would take 675 MB decoded .* only 1,000 MB of memory"):
        read_image(path)
    assert time.perf_counter() - start < 1.0  # nothing was decoded


def test_bytes_per_sample_come_from_the_header(tmp_path, monkeypatch):
    rgb = dark_photo(100, 100)
    eight = save_photo(tmp_path / "eight.png", rgb)
    sixteen = save_photo(tmp_path / "sixteen.png", rgb, bit_depth=16)
    decoded_8bit = 100 * 100 * 3
    monkeypatch.setattr(memory, "available_memory", lambda: int(decoded_8bit * DECODE_MARGIN * 1.5))
    assert read_image(eight).bit_depth == 8
    with pytest.raises(ImageTooLargeError, match="memory"):
        read_image(sixteen)
    monkeypatch.setattr(memory, "available_memory", lambda: None)  # unknown: no check
    assert read_image(sixteen).bit_depth == 16


def test_enhance_fails_that_file_with_a_clear_message(tmp_path, monkeypatch):
    folder = tmp_path / "in"
    save_photo(folder / "ok.png", dark_photo(40, 40))
    declared_png(folder / "giant.png", 15000, 15000)
    monkeypatch.setattr(memory, "available_memory", lambda: 2_000_000_000)
    result = runner.invoke(app, ["enhance", str(folder), "-o", str(tmp_path / "out"), "-m", "gamma"])
    assert result.exit_code == 3, result.output
    assert "giant.png" in result.output and "of memory is available" in result.output and "downscale" in result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["ok.png"]
    assert np.isfinite(read_image(tmp_path / "out" / "ok.png").rgb).all()
