"""Bundled checkpoints load strictly and reproduce their model card's LOL test scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lowlight_cli.models import MODELS, create_model, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = sorted(p.parent for p in (ROOT / "weights").glob("*/config.json"))
LOL = ROOT.parent / "shared" / "data" / "LOL"


def test_weights_are_bundled():
    assert BUNDLED, "weights/ holds no checkpoint"


@pytest.mark.parametrize("folder", BUNDLED, ids=lambda p: p.name)
def test_bundled_checkpoint_loads_strictly_and_has_a_card(folder):
    config = json.loads((folder / "config.json").read_text())
    model = load_checkpoint(folder)  # strict: every tensor present with its shape
    assert model.info.name == config["architecture"]
    card = (folder / "MODEL_CARD.md").read_text()
    scores = config["provenance"]["lol_test"]
    assert f"{scores['psnr']:.2f} dB" in card and "lowlight train" in card
    # the registered model whose default this is resolves to it without --weights
    defaults = [n for n in MODELS.names() if MODELS.get(n).info.bundled_weights == folder.name]
    for name in defaults:
        assert create_model(name).checkpoint_dir.resolve() == folder.resolve()


@pytest.mark.skipif(not LOL.is_dir(), reason="needs ../shared/data/LOL (the LOL test set)")
@pytest.mark.parametrize("folder", BUNDLED, ids=lambda p: p.name)
def test_bundled_checkpoint_reproduces_its_card_on_lol_test(folder):
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    from bundle_weights import lol_test_scores

    recorded = json.loads((folder / "config.json").read_text())["provenance"]["lol_test"]
    measured = lol_test_scores(folder, LOL)
    assert abs(measured["psnr"] - recorded["psnr"]) <= 0.05
    assert abs(measured["ssim"] - recorded["ssim"]) <= 0.001


def _lol_psnr(folder: Path) -> float:
    return json.loads((folder / "config.json").read_text())["provenance"]["lol_test"]["psnr"]


def test_crnet_defaults_to_the_best_trained_crnet_weights():
    family = [f for f in BUNDLED if MODELS.get(json.loads((f / "config.json").read_text())["architecture"]).info.family == "crnet"]
    best = max(family, key=_lol_psnr)
    assert MODELS.get("crnet").info.bundled_weights == best.name
    from lowlight_cli.cli.loading import load_model

    model = load_model("crnet", None, False)  # what `lowlight enhance --model crnet` runs
    assert Path(model.checkpoint_dir).resolve() == best.resolve()
