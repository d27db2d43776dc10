"""The maintenance scripts: dataset packing for remote GPU runs, the LOL test breakdown."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
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


def _scores_csv(path: Path, rows: dict[str, tuple[float, float]]) -> Path:
    lines = ["# lowlight 0.1.0; protocol: test", "name,psnr,ssim"]
    lines += [f"{name},{psnr},{ssim}" for name, (psnr, ssim) in rows.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _grey_lol(root: Path, train: dict[int, int], test: dict[int, int]) -> Path:
    import cv2
    import numpy as np

    for split, levels in (("train", train), ("test", test)):
        for stem, level in levels.items():
            path = root / split / "high" / f"{stem}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), np.full((4, 6, 3), level, np.uint8))
    return root


def test_lol_breakdown_splits_test_scores_at_the_highest_training_reference(tmp_path, capsys):
    breakdown = _script("lol_test_breakdown")
    lol = _grey_lol(tmp_path / "LOL", train={1: 100, 2: 110, 3: 120}, test={1: 50, 3: 60, 4: 70, 20: 80})
    scores = _scores_csv(tmp_path / "a.csv", {"1": (20.0, 0.8), "3": (22.0, 0.9), "4": (10.0, 0.5), "20": (14.0, 0.6)})
    other = _scores_csv(tmp_path / "b.csv", {"1": (1.0, 0.1), "3": (1.0, 0.1), "4": (1.0, 0.1), "20": (1.0, 0.1)})
    assert breakdown.main(["--lol", str(lol), f"mine={scores}", str(other)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "| scores | all (4) | numbered up to 3, as the training references (2) | numbered above 3 (2) |"
    assert lines[2] == "| mine | 16.50 / 0.7000 | 21.00 / 0.8500 | 12.00 / 0.5500 |"
    assert lines[3].startswith("| b | 1.00 / 0.1000 |")
    assert lines[-1] == (
        "reference mean grey level, median per group: all (4): 0.255; "
        "numbered up to 3, as the training references (2): 0.216; numbered above 3 (2): 0.294; "
        "training references (3): 0.431"
    )
    # CSVs that score different images are refused rather than averaged over different sets
    short = _scores_csv(tmp_path / "c.csv", {"1": (20.0, 0.8)})
    with pytest.raises(SystemExit, match="different set of images"):
        breakdown.main(["--lol", str(lol), str(scores), str(short)])


def test_bundling_names_the_bundled_copy_of_a_run_it_was_warm_started_from(tmp_path, monkeypatch):
    bundler = _script("bundle_weights")
    monkeypatch.setattr(bundler, "ROOT", tmp_path)
    run_best, twin, other = tmp_path / "runs/a/best", tmp_path / "weights/a-stage1", tmp_path / "weights/b"

    def checkpoint(folder: Path, digest: str) -> None:  # what save_checkpoint records for its weights
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps({"architecture": "crnet-s", "sha256": {"model.safetensors": digest}}))

    for folder, digest in ((run_best, "stage one"), (twin, "stage one"), (other, "something else")):
        checkpoint(folder, digest)
    assert bundler.bundled_twin(run_best) == twin  # the run's best/ was bundled as a-stage1
    assert bundler.bundled_twin(other) == other  # a bundled folder is its own parent
    checkpoint(run_best, "retrained")
    assert bundler.bundled_twin(run_best) is None  # never bundled
