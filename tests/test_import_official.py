"""`lowlight import`: an authors' DCE-Net checkpoint becomes a lowlight checkpoint that enhances exactly
as the authors' test script does with the same file.

The authors' script (SCL-LLE and PIE ``lowlight_test.py``, as Zero-DCE's): ``PIL.Image.open``,
``np.asarray(image) / 255.0``, ``float()``, the network's forward (no clamp inside it), then
``torchvision.utils.save_image``, which clamps to [0, 1] and writes ``floor(255 x + 0.5)``.
:func:`reference_enhance` re-implements that from the raw state dict with plain tensor functions,
independently of :mod:`lowlight_cli.models.dce`. Checkpoints are made here with ``torch.save`` in
both formats; the published files themselves are not downloaded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from lowlight_cli.cli.app import app
from lowlight_cli.errors import CheckpointError
from lowlight_cli.models import create_model, load_checkpoint
from lowlight_cli.models.official import import_official_checkpoint, read_official_checkpoint

from .photos import dark_photo, save_photo

runner = CliRunner()
MARKER = "lowlight-test-pickle-ran"


pytestmark = pytest.mark.usefixtures("no_hub")


def authors_state_dict(seed: int = 0, width: int = 32) -> dict[str, torch.Tensor]:
    """A state dict as ``enhance_net_nopool().state_dict()`` names it, with weights that brighten."""
    generator = torch.Generator().manual_seed(seed)
    shapes = [(width, 3), (width, width), (width, width), (width, width), (width, 2 * width), (width, 2 * width), (24, 2 * width)]
    state = {}
    for i, (cout, cin) in enumerate(shapes, start=1):
        state[f"e_conv{i}.weight"] = torch.randn(cout, cin, 3, 3, generator=generator) * 1.5 * (2 / (9 * cin)) ** 0.5
        state[f"e_conv{i}.bias"] = torch.full((cout,), -1.0) if i == 7 else 0.05 * torch.randn(cout, generator=generator)
    return state


def reference_forward(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The authors' network, written from their lowlight_model.py as plain functions (unclamped)."""

    def conv(i: int, t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, state[f"e_conv{i}.weight"], state[f"e_conv{i}.bias"], padding=1)

    x1 = torch.relu(conv(1, x))
    x2 = torch.relu(conv(2, x1))
    x3 = torch.relu(conv(3, x2))
    x4 = torch.relu(conv(4, x3))
    x5 = torch.relu(conv(5, torch.cat([x3, x4], 1)))
    x6 = torch.relu(conv(6, torch.cat([x2, x5], 1)))
    x_r = torch.tanh(conv(7, torch.cat([x1, x6], 1)))
    for r in torch.split(x_r, 3, dim=1):
        x = x + r * (torch.pow(x, 2) - x)
    return x


def reference_enhance(state: dict[str, torch.Tensor], image_path: Path) -> np.ndarray:
    """The authors' test script on one 8-bit image: the uint8 ``(H, W, 3)`` it would save."""
    data = torch.from_numpy(np.asarray(Image.open(image_path)) / 255.0).float().permute(2, 0, 1).unsqueeze(0)
    with torch.no_grad():
        enhanced = reference_forward(state, data)
    return enhanced[0].mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()  # save_image


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return authors_state_dict()


@pytest.fixture(params=["zip", "legacy"])
def official_file(request, state, tmp_path) -> Path:
    path = tmp_path / f"SCL-LLE-{request.param}.pth"
    torch.save(state, path, _use_new_zipfile_serialization=request.param == "zip")
    return path


def import_cli(*args: str):
    return runner.invoke(app, ["import", *args])


def test_import_matches_the_authors_forward(official_file, state, tmp_path):
    out = tmp_path / "ckpt"
    result = import_cli(str(official_file), "--arch", "scl-lle", "-o", str(out))
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    source = config["provenance"]["imported_from"]
    assert config["architecture"] == "scl-lle"
    assert source["sha256"] == hashlib.sha256(official_file.read_bytes()).hexdigest()
    assert source["format"] == ("zip" if "zip" in official_file.name else "legacy") and source["file"] == official_file.name
    assert source["sha256"] in result.output
    model = load_checkpoint(out)
    x = torch.from_numpy(dark_photo(70, 90)).permute(2, 0, 1)[None]
    with torch.no_grad():
        expected = reference_forward(state, x)
        assert (expected - x).abs().mean() > 0.1  # these weights brighten a lot
        assert torch.allclose(model(x), expected.clamp(0, 1), atol=2e-6)
        assert torch.allclose(model.forward_train(x)["output"], expected, atol=2e-6)


def test_enhance_with_the_imported_folder_writes_what_the_authors_script_saves(official_file, state, tmp_path):
    folder = tmp_path / "ckpt"
    assert import_cli(str(official_file), "--arch", "pie", "-o", str(folder)).exit_code == 0
    photo = save_photo(tmp_path / "in" / "night.png", dark_photo(61, 83, name="coffee", seed=4))
    result = runner.invoke(
        app,
        ["enhance", str(photo), "--model", "pie", "--weights", str(folder), "-o", str(tmp_path / "out"),
         "--device", "cpu", "--precision", "fp32", "--tile", "0"],
    )
    assert result.exit_code == 0, result.output
    ours = np.asarray(Image.open(tmp_path / "out" / "night.png").convert("RGB")).astype(int)
    theirs = reference_enhance(state, photo).astype(int)
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() <= 1  # a rounding tie may fall either way
    assert (ours == theirs).mean() > 0.999
    assert np.abs(theirs - np.asarray(Image.open(photo))).mean() > 20


def test_data_parallel_prefix_and_nested_state_dicts(state, tmp_path):
    wrapped = {"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 99}
    path = tmp_path / "wrapped.pth"
    torch.save(wrapped, path)
    found = read_official_checkpoint(path, lambda k: k if k.startswith("e_conv") else None)
    assert found.container_key == "state_dict" and found.removed_prefix == "module." and set(found.state) == set(state)
    folder = import_official_checkpoint(path, "scl-lle", tmp_path / "ckpt")
    model = load_checkpoint(folder)
    assert torch.equal(model.conv3.weight, state["e_conv3.weight"]) and torch.equal(model.conv7.bias, state["e_conv7.bias"])


def test_a_pickle_with_code_is_refused_and_never_run(tmp_path):
    marker = tmp_path / MARKER

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "evil.pth"
    for legacy in (False, True):
        torch.save({"e_conv1.weight": Payload()}, path, _use_new_zipfile_serialization=not legacy)
        result = import_cli(str(path), "--arch", "scl-lle", "-o", str(tmp_path / "ckpt"))
        assert result.exit_code == 1, result.output
        assert "refusing" in result.output and "weights_only" in result.output and "GLOBAL" in result.output
        assert not marker.exists() and not (tmp_path / "ckpt").exists()


def test_files_that_are_not_pth_pickles_are_named_without_torch_warnings(tmp_path):
    """A safetensors file renamed .pth is called one (not "Unsupported operand 72"); a plain pickle
    of another protocol is refused without torch's pickle-protocol warning leaking out."""
    import pickle
    import warnings

    from safetensors.torch import save_file

    save_file({"e_conv1.weight": torch.zeros(2)}, str(tmp_path / "renamed.pth"))
    result = import_cli(str(tmp_path / "renamed.pth"), "--arch", "scl-lle", "-o", str(tmp_path / "a"))
    assert result.exit_code == 1 and "is a safetensors file, not a PyTorch .pth pickle" in result.output, result.output
    assert "--weights" in result.output and not (tmp_path / "a").exists()
    (tmp_path / "plain.pth").write_bytes(pickle.dumps({"e_conv1.weight": [0.0]}, protocol=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
            read_official_checkpoint(tmp_path / "plain.pth")
    assert not [w for w in caught if "pickle" in str(w.message).lower()], [str(w.message) for w in caught]


def test_checkpoints_that_do_not_fit_fail_clearly(state, tmp_path):
    path = tmp_path / "full.pth"
    torch.save(state, path)
    result = import_cli(str(path), "--arch", "dce-tiny", "-o", str(tmp_path / "tiny"))
    assert result.exit_code == 1 and "does not fit" in result.output and "shape mismatch" in result.output
    assert "fit --arch scl-lle" in result.output and "config.json" not in result.output  # the architecture it is for
    partial = {k: v for k, v in state.items() if k != "e_conv5.bias"}
    torch.save(partial, path)
    with pytest.raises(CheckpointError, match=r"missing 1 \(e.g. conv5.bias\)"):
        import_official_checkpoint(path, "scl-lle", tmp_path / "a")
    torch.save({**state, "e_conv8.weight": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match=r"unexpected 1 \(e.g. e_conv8.weight\)"):
        import_official_checkpoint(path, "scl-lle", tmp_path / "b")
    broken = dict(state)
    broken["e_conv2.weight"] = broken["e_conv2.weight"].clone()
    broken["e_conv2.weight"][0, 0, 0, 0] = float("nan")
    torch.save(broken, path)
    with pytest.raises(CheckpointError, match="non-finite"):
        import_official_checkpoint(path, "scl-lle", tmp_path / "c")
    assert not any((tmp_path / n).exists() for n in ("tiny", "a", "b", "c"))


def test_files_that_are_not_state_dicts(tmp_path):
    garbage = tmp_path / "notes.pth"
    garbage.write_text("not a checkpoint")
    result = import_cli(str(garbage), "--arch", "scl-lle", "-o", str(tmp_path / "x"))
    assert result.exit_code == 1 and "not a readable PyTorch checkpoint" in result.output
    tensor_only = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor_only)
    with pytest.raises(CheckpointError, match="not a state dict"):
        import_official_checkpoint(tensor_only, "scl-lle", tmp_path / "y")
    mixed = tmp_path / "mixed.pth"
    torch.save({"e_conv1.weight": torch.zeros(1), "epoch": 3}, mixed)
    with pytest.raises(CheckpointError, match="not tensors"):
        import_official_checkpoint(mixed, "scl-lle", tmp_path / "z")
    result = import_cli(str(tmp_path / "absent.pth"), "--arch", "scl-lle", "-o", str(tmp_path / "w"))
    assert result.exit_code == 1 and "does not exist" in result.output and "hint: give the path of the downloaded file" in result.output


def test_usage_errors(official_file, tmp_path):
    out = tmp_path / "ckpt"
    result = import_cli(str(official_file), "--arch", "crnet-s", "-o", str(out))
    assert result.exit_code == 2 and "no official checkpoint format" in result.output and "scl-lle" in result.output
    result = import_cli(str(official_file), "--arch", "scl-lle-x", "-o", str(out))
    assert result.exit_code == 2 and "did you mean" in result.output
    result = import_cli(str(official_file), "--arch", "sclle", "-o", str(out))  # suggestions among what imports
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "did you mean scl-lle?" in said and "clahe" not in said, said
    result = import_cli(str(official_file), "--arch", "scl-lle", "-o", str(tmp_path / "x.onnx"))
    assert result.exit_code == 2 and "would be read as an ONNX file" in result.output and not (tmp_path / "x.onnx").exists()
    assert import_cli(str(official_file), "--arch", "scl-lle", "-o", str(out)).exit_code == 0
    result = import_cli(str(official_file), "--arch", "scl-lle", "-o", str(out))
    assert result.exit_code == 2 and "--overwrite" in result.output
    result = import_cli(str(official_file), "--arch", "pie", "-o", str(out), "--overwrite", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["architecture"] == "pie" and summary["folder"] == str(out)
    assert json.loads((out / "config.json").read_text())["architecture"] == "pie"


def test_imported_weights_run_through_create_model(official_file, state, tmp_path):
    folder = import_official_checkpoint(official_file, "scl-lle", tmp_path / "ckpt")
    model = create_model("scl-lle", weights=folder)
    assert model.provenance["imported_from"]["tensors"] == len(state)
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        assert torch.allclose(model(x), reference_forward(state, x).clamp(0, 1), atol=2e-6)


def test_zero_dce_is_the_same_network_for_its_authors_checkpoint(official_file, state, tmp_path):
    """Zero-DCE's release (``Epoch99.pth``) names its tensors as SCL-LLE's and PIE's do; ``--arch
    zero-dce`` runs it under its own paper, with no bundled weights of its own."""
    from lowlight_cli.models import model_info

    info = model_info("zero-dce")
    assert info.bundled_weights == "" and "Zero-Reference" in info.paper and info.family == "dce"
    out = tmp_path / "zero-dce"
    result = import_cli(str(official_file), "--arch", "zero-dce", "-o", str(out))
    assert result.exit_code == 0, result.output
    model = load_checkpoint(out)
    assert model.info.name == "zero-dce"
    x = torch.from_numpy(dark_photo(48, 64)).permute(2, 0, 1)[None]
    with torch.no_grad():
        assert torch.allclose(model(x), reference_forward(state, x).clamp(0, 1), atol=2e-6)
    photo = save_photo(tmp_path / "in" / "a.png", dark_photo(20, 24))
    refused = runner.invoke(app, ["enhance", str(photo), "--model", "zero-dce", "-o", str(tmp_path / "o")])
    assert refused.exit_code == 1 and "no trained weights" in refused.output
    assert "lowlight import FILE.pth --arch zero-dce" in refused.output


def test_a_failed_write_leaves_nothing_and_says_so_in_one_line(official_file, tmp_path, monkeypatch):
    """A full disk while saving (safetensors' own error): one `error:` line, exit 1, no folder left."""
    import lowlight_cli.models.checkpoint as checkpoint
    from safetensors import SafetensorError

    def full_disk(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(checkpoint, "save_file", full_disk)
    out = tmp_path / "new" / "ckpt"
    result = import_cli(str(official_file), "--arch", "scl-lle", "-o", str(out))
    assert result.exit_code == 1, result.output
    assert "error:" in result.output and "No space left" in result.output and "Traceback" not in result.output
    assert not out.parent.exists()  # the parent folder the import made is gone too


def test_overwrite_never_takes_a_folder_without_a_checkpoint(official_file, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"not really a photo")
    result = import_cli(str(official_file), "--arch", "scl-lle", "-o", str(photos), "--overwrite")
    assert result.exit_code == 2 and "no checkpoint" in result.output
    assert "pass --overwrite" not in result.output  # it was passed: the hint must not ask for it again
    assert (photos / "a.jpg").read_bytes() == b"not really a photo"


def test_values_that_are_not_finite_float32_or_not_dense_floats_are_refused(state, tmp_path):
    path = tmp_path / "odd.pth"
    cases = {
        "overflow": ({k: v.double() * 1e300 for k, v in state.items()}, "non-finite", "broken"),  # inf only as float32
        "nan": ({**state, "e_conv2.weight": state["e_conv2.weight"].clone().fill_(float("nan"))}, "non-finite", "broken"),
        "sparse": ({k: v.to_sparse() for k, v in state.items()}, "not dense real floating-point", "float tensors"),
        "complex": ({k: v.to(torch.complex64) for k, v in state.items()}, "complex64", "float tensors"),
        "integer": ({k: v.to(torch.int32) for k, v in state.items()}, "int32", "float tensors"),
    }
    for name, (tensors, message, hint) in cases.items():
        torch.save(tensors, path)
        result = import_cli(str(path), "--arch", "scl-lle", "-o", str(tmp_path / name))
        text = " ".join(result.output.split())
        assert result.exit_code == 1 and message in text and hint in text, (name, result.output)
        assert "Traceback" not in result.output and "fit --arch" not in text and not (tmp_path / name).exists()


def test_load_checkpoint_checks_the_recorded_sha256_and_refuses_a_file(official_file, tmp_path):
    from lowlight_cli.errors import WeightsIntegrityError

    folder = import_official_checkpoint(official_file, "scl-lle", tmp_path / "ok")
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-5] ^= 1  # one bit of one weight
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsIntegrityError, match="sha256"):
        load_checkpoint(folder)
    with pytest.raises(CheckpointError, match="is a file, not a checkpoint folder"):
        load_checkpoint(official_file)
    with pytest.raises(TypeError, match="model name must be a string"):
        create_model(None)  # type: ignore[arg-type]


def test_the_suggested_command_pastes_with_spaces_in_the_path(state, tmp_path):
    import shlex

    path = tmp_path / "SCL-LLE.pth"
    torch.save(state, path)
    out = tmp_path / "sp ace" / "ü"
    result = import_cli(str(path), "--arch", "scl-lle", "-o", str(out))
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("run it:"))
    words = shlex.split(line.split("run it:", 1)[1])
    assert words[words.index("--weights") + 1] == str(out)  # one word, as a shell reads it


def test_a_half_precision_file_is_widened_and_says_so(state, tmp_path):
    half = {k: v.half() for k, v in state.items()}
    torch.save(half, tmp_path / "half.pth")
    folder = import_official_checkpoint(tmp_path / "half.pth", "scl-lle", tmp_path / "ckpt16")
    provenance = json.loads((folder / "config.json").read_text())["provenance"]
    assert provenance["imported_from"]["dtypes"] == ["float16"]
    assert "widened exactly from the file's float16" in provenance["weights"]
    model = load_checkpoint(folder)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():  # the half values, widened, and nothing else
        assert torch.allclose(model(x), reference_forward({k: v.float() for k, v in half.items()}, x).clamp(0, 1), atol=2e-6)
    result = import_cli(str(tmp_path / "half.pth"), "--arch", "scl-lle", "-o", str(tmp_path / "cli16"))
    assert result.exit_code == 0 and "float16 tensors are stored as float32" in result.output
    torch.save(state, tmp_path / "full.pth")
    folder = import_official_checkpoint(tmp_path / "full.pth", "scl-lle", tmp_path / "ckpt32")
    provenance = json.loads((folder / "config.json").read_text())["provenance"]
    assert provenance["imported_from"]["dtypes"] == ["float32"] and provenance["weights"].endswith("stored as float32")
