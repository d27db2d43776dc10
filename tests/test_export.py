"""`lowlight export` and exported models: ONNX/safetensors parity with PyTorch, metadata, failures,
and `.onnx` files run by `lowlight enhance` / `evaluate` through the same tiling code path.

Models are random initialisations with a small seeded perturbation of every parameter, so that
parts that are inert at initialisation (CRNet's layer-attention weight starts at 0) take part.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from lowlight_cli import __version__
from lowlight_cli.cli.app import app
from lowlight_cli.errors import ExportError, UsageError
from lowlight_cli.export import export_onnx, parity_input, parity_sizes
from lowlight_cli.inference import Enhancer, InferenceConfig
from lowlight_cli.inference.onnx_backend import OnnxModel
from lowlight_cli.inference.padding import round_up
from lowlight_cli.io import read_image
from lowlight_cli.metrics import psnr
from lowlight_cli.models import create_model, list_models, model_info, save_checkpoint
from lowlight_cli.models.checkpoint import WEIGHTS_NAME, read_config

from .photos import dark_photo, save_photo

runner = CliRunner()
EXPORTABLE = [n for n in list_models(include_test=True) if model_info(n).exportable]
NOT_EXPORTABLE = [n for n in list_models(include_test=True) if not model_info(n).exportable]
TILED = InferenceConfig(device="cpu", tile=64, overlap=16, batch_size=2)


pytestmark = pytest.mark.usefixtures("no_hub")


def perturbed(name: str, seed: int = 1, scale: float = 0.02) -> torch.nn.Module:
    """A seeded random initialisation of ``name`` with every parameter nudged (a stand-in for training)."""
    model = create_model(name, pretrained=False)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * scale)
    return model


def assert_exports_with_parity(model: torch.nn.Module, path: Path, x: torch.Tensor) -> None:
    """``model`` exports to ``path`` within 1e-4 at the parity sizes, and the file agrees on ``x`` too."""
    result = export_onnx(model, path)
    assert all(c.passed and c.max_abs_error <= 1e-4 for c in result.parity)
    with torch.no_grad():
        assert (OnnxModel(path)(x) - model(x)).abs().max() <= 1e-4


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A trained-looking crnet-tiny checkpoint folder (what `--weights` takes)."""
    model = perturbed("crnet-tiny")
    folder = tmp_path_factory.mktemp("ckpt") / "crnet-tiny"
    return save_checkpoint(model, folder, architecture="crnet-tiny", kwargs=model.config, provenance={"data": "test perturbation"})


@pytest.fixture(scope="module")
def trained_onnx(checkpoint, tmp_path_factory) -> Path:
    """The checkpoint exported through the CLI, fp32."""
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    result = runner.invoke(app, ["export", "--model", "crnet-tiny", "--weights", str(checkpoint), "--format", "onnx", "-o", str(path)])
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture()
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    save_photo(folder / "a.png", dark_photo(60, 80, seed=1))
    save_photo(folder / "b.png", dark_photo(50, 70, name="coffee", seed=2))
    return folder


@pytest.mark.parametrize("name", EXPORTABLE)
def test_onnx_export_matches_pytorch_at_sizes_it_was_not_traced_at(name, tmp_path):
    model = perturbed(name)
    result = export_onnx(model, tmp_path / f"{name}.onnx")
    multiple = model.info.input_multiple
    sizes = {(c.height, c.width) for c in result.parity}
    assert len(sizes) >= 2 and all(h != w and h % multiple == 0 and w % multiple == 0 for h, w in sizes)
    assert all(c.passed and c.max_abs_error <= 1e-4 for c in result.parity)
    assert result.opset >= 17 and (tmp_path / f"{name}.onnx").is_file()
    # independent of the reported numbers: the file on disk, a third size and batch size
    exported = OnnxModel(tmp_path / f"{name}.onnx")
    assert exported.info == model.info
    x = parity_input(3, round_up(40, multiple), round_up(56, multiple), seed=5)
    with torch.no_grad():
        assert (exported(x) - model(x)).abs().max() <= 1e-4


def test_the_bundled_default_photo_model_exports_with_its_guided_filter(tmp_path):
    """The checkpoint's kwargs switch on the guided filter, which random initialisations lack; its
    in-place box sums once exported wrong values at the borders (max abs 5.5e-4)."""
    from lowlight_cli.models import load_checkpoint

    model = load_checkpoint(Path(__file__).resolve().parents[1] / "weights" / "crnet-curve-dn-lol")
    assert model.cfg.chroma_radius and model.cfg.chroma_luma
    assert_exports_with_parity(model, tmp_path / "default.onnx", parity_input(1, 80, 112, seed=3))


def test_the_parity_input_is_a_dark_scene_the_photo_model_really_enhances():
    """Review, session 27: the default model passed the old parity input (uniform noise squared, mean
    0.33) through unchanged, so the check could not see a wrong brightening. On the dark scene it
    brightens as on a LOL image, and adding 0.01 x randn to every weight shows."""
    from lowlight_cli.models import load_checkpoint

    x = parity_input(1, 96, 128)
    assert 0.05 < float(x.mean()) < 0.15 and float(x.min()) == 0.0 and float(x.max()) > 0.99
    assert torch.equal(x, parity_input(1, 96, 128)) and not torch.equal(x, parity_input(1, 96, 128, seed=1))
    model = load_checkpoint(Path(__file__).resolve().parents[1] / "weights" / "crnet-curve-dn-lol").eval()
    changed = load_checkpoint(Path(__file__).resolve().parents[1] / "weights" / "crnet-curve-dn-lol").eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for tensor in changed.parameters():
            tensor.add_(0.01 * torch.randn(tensor.shape, generator=generator))
        out, off = model(x), changed(x)
    assert float((out - x).abs().mean()) > 0.2  # brightened, as a LOL low image is
    assert float((out - off).abs().max()) > 0.05  # an export that got the weights wrong would fail the check


def test_an_fp32_parity_failure_is_not_blamed_on_fp16(tmp_path, monkeypatch):
    from lowlight_cli.export import parity

    monkeypatch.setattr(parity, "compare", lambda expected, got, tolerance: parity.ParityCheck(8, 8, 1, 1.0, 0.0, False))
    with pytest.raises(ExportError) as failed:
        export_onnx(perturbed("crnet-tiny"), tmp_path / "x.onnx")
    assert "fp16" not in (failed.value.hint or "") and "bug" in failed.value.hint


def test_parity_needs_two_sizes_at_the_input_multiple():
    info = model_info("crnet-s")  # input multiple 4
    assert parity_sizes(info) == ((64, 96), (96, 128))
    with pytest.raises(UsageError, match="two distinct"):
        parity_sizes(info, [(64, 96), (64, 96)])
    with pytest.raises(UsageError, match="multiple"):
        parity_sizes(info, [(64, 96), (66, 96)])


@pytest.mark.parametrize("multiple", [1, 4, 8, 16, 48, 96, 120, 128, 512])
def test_default_parity_sizes_are_two_and_never_the_traced_size(multiple):
    """A curve model at --curve-scale 16 to 64 has an input multiple of 128 to 512, which folded the
    default sizes into one (the export was refused) or into the traced size."""
    from lowlight_cli.export.parity import default_parity_sizes, trace_size

    sizes = default_parity_sizes(multiple)
    assert len(set(sizes)) >= 2 and trace_size(multiple) not in sizes
    assert all(h % multiple == 0 and w % multiple == 0 and h > 0 and w > 0 for h, w in sizes)
    if multiple <= 4:
        assert sizes == [(64, 96), (96, 128)]


def test_a_large_curve_scale_exports(checkpoint, tmp_path):
    result = runner.invoke(app, ["export", "--model", "crnet-curve", "--no-pretrained", "--curve-scale", "16",
                                 "--format", "safetensors", "-o", str(tmp_path / "c16"), "--json"])
    assert result.exit_code == 0, result.output
    checked = [(check["height"], check["width"]) for check in json.loads(result.stdout)["parity"]]
    assert len(set(checked)) >= 2


def test_fp16_overflow_is_named_not_blamed_on_training(checkpoint, tmp_path):
    from safetensors.torch import save_file

    import hashlib

    from lowlight_cli.models.checkpoint import CONFIG_NAME

    big = tmp_path / "big"
    big.mkdir()
    state = load_file(checkpoint / WEIGHTS_NAME)
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first] = state[first] * 1e6 + 1e5
    save_file(state, str(big / WEIGHTS_NAME), metadata={"architecture": "crnet-tiny"})
    config = json.loads((checkpoint / CONFIG_NAME).read_text())
    config["sha256"] = {WEIGHTS_NAME: hashlib.sha256((big / WEIGHTS_NAME).read_bytes()).hexdigest()}
    (big / CONFIG_NAME).write_text(json.dumps(config))
    result = runner.invoke(app, ["export", "--model", "crnet-tiny", "--weights", str(big), "--format", "safetensors",
                                 "--fp16", "-o", str(tmp_path / "out")])
    assert result.exit_code == 1 and "do not fit float16" in result.output and "drop --fp16" in result.output
    assert ".tmp" not in result.output and "diverged" not in result.output and not (tmp_path / "out").exists()
    onnx = runner.invoke(app, ["export", "--model", "crnet-tiny", "--weights", str(big), "--fp16", "-o", str(tmp_path / "x.onnx")])
    assert onnx.exit_code == 1 and "do not fit float16" in onnx.output and not (tmp_path / "x.onnx").exists(), onnx.output


def test_an_output_under_a_file_is_one_line_not_a_traceback(tmp_path):
    (tmp_path / "afile").write_text("x")
    for fmt, target in (("onnx", tmp_path / "afile" / "x.onnx"), ("safetensors", tmp_path / "afile" / "sub")):
        result = runner.invoke(app, ["export", "--model", "gamma" if fmt == "onnx" else "crnet-tiny", "--no-pretrained",
                                     "--format", fmt, "-o", str(target)])
        assert result.exit_code == 2 and "is a file, not a folder" in result.output and "hint:" in result.output, result.output
        assert "Traceback" not in result.output


@pytest.mark.parametrize("name", NOT_EXPORTABLE)
def test_model_that_cannot_export_says_why(name, tmp_path):
    note = model_info(name).export_note
    assert note
    with pytest.raises(ExportError, match=note):  # whatever the weights: random ones will do
        export_onnx(create_model(name, pretrained=False), tmp_path / "x.onnx")
    result = runner.invoke(app, ["export", "--model", name, "-o", str(tmp_path / "x.onnx")])
    assert result.exit_code == 1
    assert note in result.output.replace("\n", " ")
    assert list(tmp_path.iterdir()) == []


def test_fp16_onnx_keeps_float32_interface_and_meets_psnr(checkpoint, tmp_path):
    path = tmp_path / "tiny-fp16.onnx"
    args = ["export", "--model", "crnet-tiny", "--weights", str(checkpoint), "--fp16", "-o", str(path), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["precision"] == "fp16" and report["tolerance"]["min_psnr_db"] == 40.0
    assert str(checkpoint) in report["weights"] and report["curve_scale"] is None  # what went in, too
    assert all(c["psnr_db"] >= 40 for c in report["parity"])
    graph = onnx.load(str(path))
    float32 = onnx.TensorProto.FLOAT
    assert graph.graph.input[0].type.tensor_type.elem_type == float32
    assert graph.graph.output[0].type.tensor_type.elem_type == float32
    weights = [t for t in graph.graph.initializer if len(t.dims) == 4]  # conv kernels
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)
    exported = OnnxModel(path)
    assert exported.precision == "fp16"
    x = parity_input(1, 72, 56, seed=3)
    with torch.no_grad():
        reference = create_model("crnet-tiny", weights=checkpoint)(x)
    assert psnr(exported(x).double(), reference.double()).item() >= 40


def test_fp16_onnx_halves_the_file(tmp_path):
    model = perturbed("crnet-s")
    full = export_onnx(model, tmp_path / "s.onnx")
    half = export_onnx(model, tmp_path / "s16.onnx", fp16=True)
    assert half.size_bytes < 0.6 * full.size_bytes
    assert all(c.psnr_db >= 40 for c in half.parity)


def test_safetensors_fp16_checkpoint_loads_with_weights_and_stays_close(checkpoint, photos, tmp_path):
    folder = tmp_path / "tiny-fp16"
    result = runner.invoke(app, ["export", "--model", "crnet-tiny", "--weights", str(checkpoint), "--format", "safetensors", "--fp16", "-o", f"{folder}/"])
    assert result.exit_code == 0, result.output
    assert (folder / WEIGHTS_NAME).stat().st_size < 0.6 * (checkpoint / WEIGHTS_NAME).stat().st_size
    assert {t.dtype for t in load_file(folder / WEIGHTS_NAME).values()} == {torch.float16}
    assert read_config(folder)["provenance"]["export"]["dtype"] == "fp16"

    enhanced = runner.invoke(app, ["enhance", str(photos), "--model", "crnet-tiny", "--weights", str(folder), "-o", str(tmp_path / "out")])
    assert enhanced.exit_code == 0, enhanced.output
    assert (tmp_path / "out" / "a.png").is_file()
    rgb = dark_photo(60, 80, seed=1)
    half = Enhancer(create_model("crnet-tiny", weights=folder), TILED).enhance(rgb)
    full = Enhancer(create_model("crnet-tiny", weights=checkpoint), TILED).enhance(rgb)
    as_batch = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].double()  # noqa: E731
    assert psnr(as_batch(half), as_batch(full)).item() >= 40


def test_failed_parity_exits_1_and_leaves_nothing(checkpoint, tmp_path, monkeypatch):
    real_run = onnxruntime.InferenceSession.run

    def skewed(self, output_names, feed, *args, **kwargs):
        return [out + np.float32(0.01) for out in real_run(self, output_names, feed, *args, **kwargs)]

    monkeypatch.setattr(onnxruntime.InferenceSession, "run", skewed)
    out_dir = tmp_path / "exports"
    out_dir.mkdir()
    target = out_dir / "tiny.onnx"
    args = ["export", "--model", "crnet-tiny", "--weights", str(checkpoint), "-o", str(target)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "parity check failed" in result.output
    assert list(out_dir.iterdir()) == []
    # a good earlier file is not clobbered by a failing --overwrite
    target.write_bytes(b"earlier export")
    assert runner.invoke(app, args + ["--overwrite"]).exit_code == 1
    assert target.read_bytes() == b"earlier export" and list(out_dir.iterdir()) == [target]


def test_failed_checkpoint_parity_leaves_no_folder(checkpoint, tmp_path, monkeypatch):
    from lowlight_cli.export import checkpoint_export

    monkeypatch.setattr(checkpoint_export, "load_checkpoint", lambda folder, **kw: perturbed("crnet-tiny", seed=9))
    target = tmp_path / "tiny-ckpt"
    result = runner.invoke(app, ["export", "--model", "crnet-tiny", "--weights", str(checkpoint), "--format", "safetensors", "-o", str(target)])
    assert result.exit_code == 1 and "parity check failed" in result.output
    assert not target.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_enhance_runs_onnx_file_like_pytorch(checkpoint, trained_onnx, photos, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["enhance", str(photos), "--model", str(trained_onnx), "-o", str(out), "--tile", "64", "--overlap", "16", "-b", "2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "onnxruntime" in result.output and "not loaded from a checkpoint" not in result.output  # trained: no warning
    torch_model = create_model("crnet-tiny", weights=checkpoint)
    for name in ("a.png", "b.png"):
        rgb = read_image(photos / name).rgb.astype(np.float32) / 255.0
        via_onnx = Enhancer(OnnxModel(trained_onnx), TILED).enhance(rgb)
        via_torch = Enhancer(torch_model, TILED).enhance(rgb)
        assert np.abs(via_onnx - via_torch).max() <= 1e-4  # before 8-bit rounding
        written = read_image(out / name).rgb.astype(np.int32)
        assert np.abs(written - np.round(via_torch * 255).astype(np.int32)).max() <= 1


def test_evaluate_runs_onnx_file(trained_onnx, tmp_path):
    data = tmp_path / "pairs"
    save_photo(data / "low" / "1.png", dark_photo(48, 64, seed=4))
    save_photo(data / "high" / "1.png", dark_photo(48, 64, seed=4, exposure=1.0))
    result = runner.invoke(app, ["evaluate", "--model", str(trained_onnx), "--data", str(data), "--metrics", "psnr", "--json"])
    assert result.exit_code == 0, result.output
    assert "psnr" in result.stdout


def test_onnx_model_refuses_weights_flags_and_reexport(trained_onnx, photos, tmp_path):
    for extra in (["--weights", str(tmp_path)], ["--no-pretrained"]):
        result = runner.invoke(app, ["enhance", str(photos), "--model", str(trained_onnx), "-o", str(tmp_path / "o"), *extra])
        assert result.exit_code == 2, result.output
        assert "carries its own weights" in result.output
    result = runner.invoke(app, ["export", "--model", str(trained_onnx), "-o", str(tmp_path / "again.onnx")])
    assert result.exit_code == 2 and "names an ONNX file" in result.output


def test_onnx_file_refuses_a_precision_or_compilation_it_cannot_run(trained_onnx, photos, tmp_path):
    # the graph runs at its exported precision: an explicit other one is refused, never silently dropped
    for extra, said in ((["--precision", "bf16"], "--precision bf16 does not apply"),
                        (["--precision", "fp16"], "--precision fp16 does not apply"),
                        (["--compile"], "not to the ONNX file")):
        result = runner.invoke(app, ["enhance", str(photos), "--model", str(trained_onnx), "-o", str(tmp_path / "o"), *extra])
        assert result.exit_code == 2, result.output
        assert said in result.output and trained_onnx.name in result.output
    assert not (tmp_path / "o").exists()
    result = runner.invoke(app, ["enhance", str(photos), "--model", str(trained_onnx), "-o", str(tmp_path / "o"),
                                 "--precision", "fp32"])
    assert result.exit_code == 0, result.output  # its own precision, said explicitly, runs


def test_the_enhancer_runs_an_onnx_file_at_its_own_precision(checkpoint, trained_onnx, tmp_path):
    # the library refuses what the CLI refuses: the engine, not the command, knows a graph's precision
    model = OnnxModel(trained_onnx)
    assert Enhancer(model, InferenceConfig(device="cpu")).precision == "fp32"  # not bf16, even on a bf16 CPU
    with pytest.raises(UsageError, match=f"{trained_onnx.name} runs in the precision it was exported with"):
        Enhancer(model, InferenceConfig(device="cpu", precision="fp16"))
    with pytest.raises(UsageError, match=f"not to the ONNX file {trained_onnx.name}"):
        Enhancer(model, InferenceConfig(device="cpu", compile=True))
    # compare's --precision is for its PyTorch models: an fp16 ONNX file beside them runs at its own
    half = tmp_path / "tiny-fp16.onnx"
    exported = runner.invoke(app, ["export", "--model", "crnet-tiny", "--weights", str(checkpoint), "--fp16", "-o", str(half)])
    assert exported.exit_code == 0, exported.output
    data = tmp_path / "set"
    for i, name in enumerate(("a", "b")):
        save_photo(data / "low" / f"{name}.png", dark_photo(40, 48, seed=i))
        save_photo(data / "high" / f"{name}.png", dark_photo(40, 48, seed=i, exposure=0.5))
    result = runner.invoke(app, ["compare", "gamma", str(half), "--data", str(data), "--precision", "fp32", "--json"])
    assert result.exit_code == 0, result.output
    assert "onnxruntime fp16" in result.stdout, result.stdout
    said = " ".join(result.output.split())
    assert f"{half} runs in the precision it was exported with (fp16), not --precision fp32" in said  # never silently
    alone = runner.invoke(app, ["evaluate", "--model", str(half), "--data", str(data), "--precision", "fp32"])
    assert alone.exit_code == 2 and "--precision fp32 does not apply" in alone.output


def test_metadata_props_describe_model_and_weights(checkpoint, trained_onnx):
    graph = onnx.load(str(trained_onnx))
    props = {p.key: p.value for p in graph.metadata_props}
    assert props["architecture"] == "crnet-tiny"
    assert props["lowlight_version"] == __version__
    assert props["input_range"] == "[0, 1]"
    assert props["input_multiple"] == "1"
    assert props["precision"] == "fp32"
    weights = json.loads(props["weights"])
    assert weights["source"] == "checkpoint"
    assert weights["sha256"] == read_config(checkpoint)["sha256"][WEIGHTS_NAME]
    assert weights["provenance"] == {"data": "test perturbation"}
    assert weights["checkpoint"] == checkpoint.name  # the folder's name: a shared file carries no local path
    assert str(checkpoint.parent) not in props["weights"]
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 17
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "height", "width"]


def test_input_multiple_is_respected(tmp_path):
    model = perturbed("crnet-s")  # input multiple 4
    export_onnx(model, tmp_path / "s.onnx")
    exported = OnnxModel(tmp_path / "s.onnx")
    with pytest.raises(ValueError, match="multiples of 4"):
        exported(torch.rand(1, 3, 30, 45))
    rgb = dark_photo(50, 70, seed=6)  # not a multiple of 4: the engine pads
    whole = InferenceConfig(device="cpu", tile=0)
    assert np.abs(Enhancer(exported, whole).enhance(rgb) - Enhancer(model, whole).enhance(rgb)).max() <= 1e-4


def test_existing_output_needs_overwrite_and_bad_requests_are_usage_errors(tmp_path):
    target = tmp_path / "g.onnx"
    target.write_bytes(b"old")
    result = runner.invoke(app, ["export", "--model", "gamma", "-o", str(target)])
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert "exporting" not in result.output  # refused before any model loads or any work is done
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"old")
    result = runner.invoke(app, ["export", "--model", "crnet-curve-dn", "--format", "safetensors", "-o", str(folder)])
    assert result.exit_code == 2 and "already holds" in result.output and "exporting" not in result.output
    photos = tmp_path / "photos"  # a folder of other files: the checkpoint is not mixed in with them, even with --overwrite
    photos.mkdir()
    (photos / "a.png").write_bytes(b"png")
    for extra in ([], ["--overwrite"]):
        result = runner.invoke(app, ["export", "--model", "gamma", "--format", "safetensors", "-o", str(photos), *extra])
        assert result.exit_code == 2 and "holds no checkpoint" in result.output, result.output
    assert sorted(p.name for p in photos.iterdir()) == ["a.png"]
    result = runner.invoke(app, ["export", "--model", "crnet-curve-dn", "--format", "safetensors", "-o", str(tmp_path / "x.onnx")])
    assert result.exit_code == 2 and "read as an ONNX file" in result.output and not (tmp_path / "x.onnx").exists()
    assert runner.invoke(app, ["export", "--model", "gamma", "-o", str(target), "--overwrite"]).exit_code == 0
    assert OnnxModel(target).info.name == "gamma"
    assert runner.invoke(app, ["export", "--model", "gamma", "--format", "tflite"]).exit_code == 2
    assert runner.invoke(app, ["export", "--model", "gamma", "-o", str(tmp_path / "g.bin")]).exit_code == 2
    assert runner.invoke(app, ["export", "--model", "gamma", "-o", str(tmp_path / "h.onnx"), "--opset", "11"]).exit_code == 2
    result = runner.invoke(app, ["export", "--model", "gamma", "--format", "safetensors", "-o", str(tmp_path / "g")])
    assert result.exit_code == 1 and "no trained weights" in result.output
    # --opset means nothing to a safetensors export (it was ignored); --format takes any case
    result = runner.invoke(app, ["export", "--model", "crnet-curve-dn", "--format", "safetensors", "--opset", "18",
                                 "-o", str(tmp_path / "s")])
    assert result.exit_code == 2 and "--opset is an ONNX setting" in result.output and not (tmp_path / "s").exists()
    result = runner.invoke(app, ["export", "--model", "gamma", "--format", "ONNX", "-o", str(tmp_path / "upper.onnx")])
    assert result.exit_code == 0 and OnnxModel(tmp_path / "upper.onnx").info.name == "gamma", result.output


def test_global_context_crnet_exports_with_parity(tmp_path):
    model = create_model("crnet-tiny", pretrained=False, global_context=True, context_channels=8)
    generator = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.05)
    assert_exports_with_parity(model, tmp_path / "ctx.onnx", parity_input(2, 44, 52, seed=6))


def test_an_unwritable_destination_is_one_line_not_a_traceback(tmp_path, monkeypatch):
    """A read-only folder (monkeypatched: tests may run as root, who may write anywhere)."""
    import errno

    from lowlight_cli.export import staging

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", kwargs.get("dir"))

    monkeypatch.setattr(staging.tempfile, "mkstemp", read_only)
    target = tmp_path / "g.onnx"
    result = runner.invoke(app, ["export", "--model", "gamma", "-o", str(target)])
    assert result.exit_code == 1, result.output
    assert f"error: {target}: Read-only file system" in result.output and "hint:" in result.output
    assert "Traceback" not in result.output and not target.exists()


def test_destination_mistakes_are_refused_before_the_model_loads(tmp_path, monkeypatch):
    """A broken symbolic link was replaced without --overwrite; a name without .onnx was refused only
    after the model had loaded."""
    import lowlight_cli.cli.export as export_command

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(export_command, "load_model", never)
    (tmp_path / "broken.onnx").symlink_to(tmp_path / "nowhere.onnx")
    for target, expected in ((tmp_path / "broken.onnx", "exists"), (tmp_path / "noext", "ends in .onnx")):
        result = runner.invoke(app, ["export", "--model", "pie", "-o", str(target)])
        assert result.exit_code == 2 and expected in result.output, result.output
    assert (tmp_path / "broken.onnx").is_symlink() and not (tmp_path / "nowhere.onnx").exists()


def _ctrl_c_at_first_rename(monkeypatch) -> None:
    """Ctrl-C as the first file is renamed into place (the signal lands right after the rename);
    renames inside the temporary folder (the checkpoint's own atomic writes) pass."""
    import os
    import signal

    real, calls = os.replace, []

    def replace(src, dst):
        real(src, dst)
        if ".tmp" not in str(dst):
            calls.append(dst)
            if len(calls) == 1:
                signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(os, "replace", replace)


def test_ctrl_c_between_renames_leaves_the_whole_export_in_place_and_says_so(tmp_path, monkeypatch):
    from lowlight_cli.export.staging import staged_folder

    folder = tmp_path / "ckpt"
    folder.mkdir()
    for name in ("a.json", "b.bin"):
        (folder / name).write_text("old")
    _ctrl_c_at_first_rename(monkeypatch)
    with pytest.raises(KeyboardInterrupt, match="was written"):
        with staged_folder(folder, ("a.json", "b.bin"), overwrite=True) as tmp:
            for name in ("a.json", "b.bin"):
                (tmp / name).write_text("new")
    assert [(folder / n).read_text() for n in ("a.json", "b.bin")] == ["new", "new"]  # never a mix
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary folder left


def test_an_export_interrupted_once_written_names_the_file_it_wrote(tmp_path, monkeypatch):
    _ctrl_c_at_first_rename(monkeypatch)
    target = tmp_path / "out"
    result = runner.invoke(app, ["export", "--model", "crnet-tiny", "--no-pretrained", "--format", "safetensors",
                                 "-o", str(target)])
    text = " ".join(result.output.split())
    assert result.exit_code == 130 and "interrupted (Ctrl-C) after" in text and "was written" in text, result.output
    assert (target / WEIGHTS_NAME).is_file()


def test_a_rename_that_fails_midway_puts_the_previous_checkpoint_back(tmp_path, monkeypatch):
    import errno
    import os

    from lowlight_cli.export.staging import staged_folder

    folder = tmp_path / "ckpt"
    folder.mkdir()
    for name in ("a.json", "b.bin"):
        (folder / name).write_text("old")
    (folder / "notes.txt").write_text("mine")  # not the export's: left alone
    real = os.replace

    def replace(src, dst):
        if Path(dst) == folder / "b.bin" and not str(src).endswith(".previous"):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError):
        with staged_folder(folder, ("a.json", "b.bin"), overwrite=True) as tmp:
            for name in ("a.json", "b.bin"):
                (tmp / name).write_text("new")
    assert {p.name: p.read_text() for p in folder.iterdir()} == {"a.json": "old", "b.bin": "old", "notes.txt": "mine"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_an_onnx_export_interrupted_as_it_is_put_in_place_is_whole_and_said(tmp_path, monkeypatch):
    from lowlight_cli.export.staging import staged_file

    target = tmp_path / "m.onnx"
    _ctrl_c_at_first_rename(monkeypatch)
    with pytest.raises(KeyboardInterrupt, match="was written"):
        with staged_file(target) as tmp:
            tmp.write_text("model")
    assert target.read_text() == "model" and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    with pytest.raises(KeyboardInterrupt) as before:  # before the rename: nothing written, nothing said of a file
        with staged_file(tmp_path / "n.onnx") as tmp:
            tmp.write_text("model")
            raise KeyboardInterrupt
    assert str(before.value) == "" and not (tmp_path / "n.onnx").exists()


def test_weights_alone_name_the_model_as_in_enhance(checkpoint, trained_onnx, tmp_path, monkeypatch):
    """`export --weights CKPT` exports the architecture the checkpoint names (the docs say --weights
    works as in enhance); with neither option it says what it needs."""
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["export", "--weights", str(checkpoint)])
    assert result.exit_code == 0, result.output
    assert OnnxModel(tmp_path / "crnet-tiny.onnx").info.name == "crnet-tiny"  # the default name: the architecture's
    x = torch.rand(1, 3, 32, 48)
    assert torch.equal(OnnxModel(tmp_path / "crnet-tiny.onnx")(x), OnnxModel(trained_onnx)(x))  # the same weights
    result = runner.invoke(app, ["export"])
    assert result.exit_code == 2 and "export needs a model" in result.output and "--weights" in result.output
    # --model of the same family with weights of another architecture: named after what is exported
    result = runner.invoke(app, ["export", "--model", "crnet-s", "--weights", str(checkpoint), "--fp16"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "crnet-tiny-fp16.onnx").is_file() and not (tmp_path / "crnet-s-fp16.onnx").exists()


def test_an_onnx_name_without_a_stem_and_a_folder_named_onnx_are_said_as_such(tmp_path):
    result = runner.invoke(app, ["export", "--model", "gamma", "-o", str(tmp_path / ".onnx")])
    assert result.exit_code == 2 and "needs a name before .onnx" in result.output, result.output
    (tmp_path / "dir.onnx").mkdir()
    with pytest.raises(Exception, match="is a folder, not an ONNX file"):
        OnnxModel(tmp_path / "dir.onnx")


def test_export_metadata_leaves_the_training_runs_local_paths_out(tmp_path):
    from lowlight_cli.export import weights_provenance
    from lowlight_cli.models import load_checkpoint

    model = create_model("crnet-tiny", pretrained=False)
    folder = save_checkpoint(model, tmp_path / "mine" / "best", architecture="crnet-tiny", kwargs=model.config,
                             provenance={"data": "LOL", "train_config": {"data": {"root": str(tmp_path / "secret")}}})
    loaded = load_checkpoint(folder)
    text = json.dumps(weights_provenance(loaded, loaded.info))
    assert "secret" not in text and str(tmp_path) not in text
    assert json.loads(text)["provenance"] == {"data": "LOL"} and json.loads(text)["checkpoint"] == "best"


@pytest.mark.parametrize("fmt", ["onnx", "safetensors"])
def test_an_export_tells_each_step_for_a_progress_line(checkpoint, fmt, tmp_path):
    """Tracing the paper-size Semi-LLIE takes about 30 s: the library says what it does next
    (`on_stage`), which `lowlight export` shows as a spinner on a terminal."""
    from lowlight_cli.export import export_model

    stages: list[str] = []
    model = create_model("crnet-tiny", weights=str(checkpoint))
    target = tmp_path / ("m.onnx" if fmt == "onnx" else "m")
    export_model(model, target, format=fmt, on_stage=stages.append)
    sizes = [f"comparing with PyTorch at 2x{h}x{w}" for h, w in parity_sizes(model.info, None)]
    first = ["tracing the model into an ONNX graph", "loading the graph in onnxruntime"] if fmt == "onnx" else \
        ["saving the checkpoint and loading it back"]
    assert stages == first + sizes



def test_export_says_the_curve_scale_it_exports(tmp_path):
    args = ["export", "--model", "dce-tiny", "--no-pretrained", "--curve-scale", "2", "-o", str(tmp_path / "d.onnx")]
    said = runner.invoke(app, args)
    assert said.exit_code == 0 and "curves at 1/2 resolution" in " ".join(said.output.split()), said.output
    report = json.loads(runner.invoke(app, [*args, "--overwrite", "--json"]).stdout)
    assert report["curve_scale"] == 2


def test_an_output_folder_that_cannot_be_written_is_refused_before_the_export(tmp_path, monkeypatch):
    # a read-only folder or file system: said at once, naming the user's -o, not after the export and parity run
    import lowlight_cli.export.staging as staging

    read_only = tmp_path / "ro"
    read_only.mkdir()
    real = staging.os.access
    monkeypatch.setattr(staging.os, "access", lambda p, mode: False if Path(p) == read_only else real(p, mode))
    loaded = []
    monkeypatch.setattr("lowlight_cli.cli.export.load_model", lambda *a, **k: loaded.append(1))
    for args in (["-o", str(read_only / "m.onnx")], ["--format", "safetensors", "-o", str(read_only / "deeper" / "ck")]):
        result = runner.invoke(app, ["export", "--model", "dce-tiny", "--no-pretrained", *args])
        said = " ".join(result.output.split())
        assert result.exit_code == 2 and f"folder {read_only} cannot be written" in said, result.output
    assert not loaded
