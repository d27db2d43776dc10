"""The maintenance scripts: dataset packing for remote GPU runs."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_lol(root: Path) -> None:
    for split, stems, labeled in (("train", range(1, 7), {1, 2, 3}), ("test", range(20, 22), {20, 21})):
        for stem in stems:
            for side in ("low", "high"):
                if side == "high" and stem not in labeled:
                    continue
                path = root / split / side / f"{stem}.webp"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(os.urandom(3000 + 100 * stem))
    (root / "README.md").write_text("fake")


def test_pack_keeps_pairs_together_under_the_part_size_and_unpacks_verified(tmp_path):
    packer = _script("pack_dataset")
    source, parts, target = tmp_path / "LOL", tmp_path / "parts", tmp_path / "out"
    _fake_lol(source)
    manifest = packer.pack(source, parts, part_bytes=12_000, labeled_only=True)
    assert len(manifest["parts"]) > 1
    files = manifest["files"]
    assert "train/low/4.webp" not in files  # unlabeled: left out with --labeled-only
    for stem in (1, 2, 3):
        assert files[f"train/low/{stem}.webp"]["part"] == files[f"train/high/{stem}.webp"]["part"]
    for part in manifest["parts"]:  # a part only exceeds the limit when one pair alone does
        assert part["bytes"] < 12_000 + 10_000
    # parts arrive one by one: unpack reports what is still missing, then completes
    first = parts / manifest["parts"][0]["name"]
    held = tmp_path / "held"
    held.mkdir()
    for part in manifest["parts"][1:]:
        (parts / part["name"]).rename(held / part["name"])
    assert packer.unpack(parts, target) > 0 and first.is_file()
    for tar in held.iterdir():
        tar.rename(parts / tar.name)
    assert packer.unpack(parts, target) == 0
    for rel in files:
        assert (target / rel).read_bytes() == (source / rel).read_bytes()
    # a corrupted file is caught
    (target / "train/low/1.webp").write_bytes(b"broken")
    (parts / files["train/low/1.webp"]["part"]).unlink()
    with pytest.raises(SystemExit, match="differ"):
        packer.unpack(parts, target)
    assert json.loads((parts / "parts.json").read_text())["root"] == "LOL"
