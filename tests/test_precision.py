"""Precision on the CPU: fp32 by default; bf16 autocast on CPUs with native bf16, for inference and training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lowlight_cli.cli.app import app
from lowlight_cli.data.pairs import synthetic_pairs
from lowlight_cli.errors import UsageError
from lowlight_cli.inference import Enhancer, InferenceConfig, precision
from lowlight_cli.models import create_model

runner = CliRunner()
CPU = torch.device("cpu")


@pytest.fixture
def native_bf16(monkeypatch):
    """Pretend the CPU has AVX512-BF16/AMX: PyTorch emulates bf16 elsewhere, so the numbers are the same."""
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)


def test_cpu_precision_is_fp32_unless_bf16_is_asked_for_and_native(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.resolve_precision("auto", CPU) == "fp32"
    with pytest.raises(UsageError, match="AVX512-BF16 or AMX"):
        precision.resolve_precision("bf16", CPU)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.resolve_precision("auto", CPU) == "fp32"  # opt-in: bf16 changes the numbers
    assert precision.resolve_precision("bf16", CPU) == "bf16"
    with pytest.raises(UsageError, match="fp16 needs a CUDA GPU"):
        precision.resolve_precision("fp16", CPU)
    with pytest.raises(UsageError, match="fp16 needs a CUDA GPU"):
        precision.resolve_precision("fp16", torch.device("mps"))


def test_auto_is_bf16_on_a_cpu_with_it_only_where_the_caller_asks(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.resolve_precision("auto", CPU, cpu_bf16=True) == "bf16"  # lowlight enhance
    assert precision.resolve_precision("auto", CPU) == "fp32"  # evaluate, training
    assert precision.resolve_precision("fp32", CPU, cpu_bf16=True) == "fp32"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.resolve_precision("auto", CPU, cpu_bf16=True) == "fp32"


def test_a_onednn_isa_limit_below_bf16_means_no_native_bf16(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    for isa, native in [("AVX2", False), ("avx512_core", False), ("AVX512_CORE_VNNI", False), ("AVX512_CORE_BF16", True),
                        ("AVX512_CORE_AMX", True), ("ALL", True), ("", True)]:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
        assert precision.cpu_has_native_bf16() is native, isa


def test_bf16_refused_under_a_onednn_isa_limit_names_the_variable(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    with pytest.raises(UsageError, match="switched off by ONEDNN_MAX_CPU_ISA=AVX2") as caught:
        precision.resolve_precision("bf16", CPU)
    assert "unset ONEDNN_MAX_CPU_ISA" in caught.value.hint
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    with pytest.raises(UsageError, match="this CPU would only emulate it"):  # no bf16 in the CPU at all
        precision.resolve_precision("bf16", CPU)


def test_cpu_has_native_bf16_reads_the_cpu_flags(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert precision.cpu_has_native_bf16() is False
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert precision.cpu_has_native_bf16() is True


def _photo() -> np.ndarray:
    return synthetic_pairs(1, size=(160, 224), seed=3)[0].low.astype(np.float32) / 255.0


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


@pytest.mark.parametrize("tile", [0, 64])
def test_cpu_bf16_enhancement_is_close_to_fp32_but_computed_in_bf16(native_bf16, tile):
    model = create_model("crnet-s")  # the bundled trained weights
    photo = _photo()
    fp32 = Enhancer(model, InferenceConfig(device="cpu", precision="fp32", tile=tile, overlap=16)).enhance(photo)
    bf16_enhancer = Enhancer(model, InferenceConfig(device="cpu", precision="bf16", tile=tile, overlap=16))
    assert bf16_enhancer.precision == "bf16"
    bf16 = bf16_enhancer.enhance(photo)
    assert bf16.dtype == np.float32 and np.isfinite(bf16).all()
    assert not np.array_equal(bf16, fp32)  # bf16 really ran
    assert _psnr(bf16, fp32) >= 35.0


def _photo_file(folder) -> str:
    import cv2

    photo = folder / "dark.png"
    cv2.imwrite(str(photo), (_photo()[..., ::-1] * 255).round().astype(np.uint8))
    return str(photo)


def test_enhance_cli_runs_bf16_on_the_cpu_and_says_so(native_bf16, tmp_path):
    photo = _photo_file(tmp_path)
    result = runner.invoke(app, ["enhance", str(photo), "--model", "crnet-s", "--device", "cpu", "--precision", "bf16",
                                 "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "(bf16" in result.output and (tmp_path / "out" / "dark.png").is_file()


def test_enhance_runs_bf16_by_default_on_a_cpu_with_it_and_evaluate_stays_fp32(monkeypatch, tmp_path):
    photo = _photo_file(tmp_path)
    for native, expected in [(True, "(bf16"), (False, "(fp32")]:
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda native=native: native)
        result = runner.invoke(app, ["enhance", photo, "--model", "crnet-curve-dn", "--no-pretrained", "--device", "cpu",
                                     "-o", str(tmp_path / f"out-{native}")])
        assert result.exit_code == 0 and expected in result.output, result.output
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    unmeasured = runner.invoke(app, ["enhance", photo, "--model", "scl-lle", "--no-pretrained", "--device", "cpu",
                                     "-o", str(tmp_path / "out-dce")])  # not measured in bf16: fp32
    assert unmeasured.exit_code == 0 and "(fp32" in unmeasured.output, unmeasured.output
    slower = runner.invoke(app, ["enhance", photo, "--model", "crnet-s", "--no-pretrained", "--device", "cpu",
                                 "-o", str(tmp_path / "out-s")])  # measured slower in bf16 at its tiles: fp32
    assert slower.exit_code == 0 and "(fp32" in slower.output, slower.output
    scored = runner.invoke(app, ["evaluate", "--model", "crnet-curve-dn", "--no-pretrained", "--data", str(tmp_path), "--metrics", "niqe", "--json"])
    assert json.loads(scored.stdout[scored.stdout.index("{"):])["inference"]["precision"] == "fp32", scored.output


def test_enhance_cli_refuses_bf16_on_a_cpu_without_it(monkeypatch, tmp_path):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    result = runner.invoke(app, ["enhance", _photo_file(tmp_path), "--model", "gamma", "--device", "cpu", "--precision", "bf16",
                                 "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "AVX512-BF16" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


SMOKE = [
    "--set", "model.name=crnet-tiny", "--set", "data.root=synthetic", "--set", "data.synthetic_count=10",
    "--set", "data.patch_size=32", "--set", "data.patches_per_image=4", "--set", "data.batch_size=4",
    "--set", "run.device=cpu", "--set", "run.log_every=1", "--set", "run.val_every=100", "--max-steps", "4",
]


def test_training_in_bf16_on_the_cpu_keeps_fp32_weights_and_tracks_fp32_training(native_bf16, tmp_path):
    from safetensors.torch import load_file

    runs = {}
    for name in ("fp32", "bf16"):
        result = runner.invoke(app, ["train", *SMOKE, "--precision", name, "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        assert f"on cpu ({name})" in result.output
        log = [json.loads(line) for line in (tmp_path / name / "log.jsonl").read_text().splitlines()]
        runs[name] = ([r["terms"]["loss"] for r in log if r["kind"] == "step"], load_file(str(tmp_path / name / "last" / "model.safetensors")))
    (loss32, w32), (loss16, w16) = runs["fp32"], runs["bf16"]
    assert all(t.dtype == torch.float32 for t in w16.values())  # master weights stay fp32
    assert any(not torch.equal(w32[k], w16[k]) for k in w32)  # bf16 really ran
    assert np.allclose(loss16, loss32, rtol=0.02, atol=0.005)  # and follows the fp32 run closely
    resumed = runner.invoke(app, ["train", "--resume", str(tmp_path / "fp32"), "--precision", "bf16", "--max-steps", "6"])
    assert resumed.exit_code == 0 and "on cpu (bf16)" in resumed.output  # a run may switch to bf16 on resume
