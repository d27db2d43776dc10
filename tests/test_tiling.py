"""Tiled inference reproduces whole-image inference; padding never crops the user's image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lowlight_cli.inference import Enhancer, InferenceConfig, pad_to_multiple, plan_tiles, tile_starts, tiled_forward
from lowlight_cli.models import create_model

from .photos import dark_photo


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / ((a - b) ** 2).mean()))


def test_tiles_cover_the_image_with_equal_sizes():
    starts = tile_starts(1000, 256, 32)
    assert starts[0] == 0 and starts[-1] == 1000 - 256
    assert all(b - a <= 256 - 32 for a, b in zip(starts, starts[1:]))
    tiles = plan_tiles(768, 1000, 256, 256, 32)
    covered = np.zeros((768, 1000), bool)
    for t in tiles:
        assert (t.height, t.width) == (256, 256)
        covered[t.top : t.top + t.height, t.left : t.left + t.width] = True
    assert covered.all()


def test_padding_reaches_the_multiple_and_crops_back():
    x = torch.rand(1, 3, 37, 50)
    padded = pad_to_multiple(x, 16)
    assert padded.shape[-2:] == (48, 64)
    assert torch.equal(padded[..., :37, :50], x)
    model = create_model("crnet-s", pretrained=False)  # input multiple 4
    out = tiled_forward(model, x, tile=0, multiple=4)
    assert out.shape == x.shape


def test_tile_exact_model_tiled_equals_whole():
    model = create_model("gamma")
    assert model.info.tile_exact
    image = torch.from_numpy(dark_photo(300, 410)).permute(2, 0, 1)[None]
    whole = tiled_forward(model, image, tile=0)
    for tile, overlap in ((64, 8), (128, 32), (100, 0), (128, 100)):  # the last shifts the strip in 4 blocks
        tiled = tiled_forward(model, image, tile=tile, overlap=overlap, batch_size=3)
        assert (tiled - whole).abs().max() <= 1e-5, (tile, overlap)


def _crnet_with_active_attention(name: str) -> torch.nn.Module:
    model = create_model(name, pretrained=False)
    for group in model.body:  # gamma starts at 0 (identity); make the global attention matter
        group.attention.gamma.data.fill_(1.0)
    for head in model.heads:  # a random head barely changes the image; make the output depend on the body
        head.weight.data.mul_(20.0)
    return model


@pytest.mark.parametrize("name", ["crnet-s", "crnet-tiny"])  # quarter-resolution body / full-resolution body
def test_crnet_is_not_tile_exact_but_tiling_stays_above_40db(name):
    model = _crnet_with_active_attention(name)
    assert not model.info.tile_exact
    image = torch.from_numpy(dark_photo(768, 1024)).permute(2, 0, 1)[None]
    with torch.no_grad():
        whole = tiled_forward(model, image, tile=0, multiple=4)
        tiled = tiled_forward(model, image, tile=256, overlap=32, batch_size=4, multiple=4)
        assert (whole - image).abs().mean() > 0.01  # the model really does something
        assert _psnr(tiled, whole) >= 40.0
        # the blending is what buys it: abutting tiles (no overlap) leave visible seams
        seams = tiled_forward(model, image, tile=256, overlap=0, batch_size=4, multiple=4)
        assert _psnr(seams, whole) < 35.0
        # and the global attention does act: a lone 256 tile differs from its place in the whole image
        crop = tiled_forward(model, image[..., :256, :256].contiguous(), tile=0, multiple=4)
        assert (crop - whole[..., :256, :256]).abs().max() > 1e-6


def test_enhancer_reports_tile_progress():
    events = []
    enhancer = Enhancer(create_model("gamma"), InferenceConfig(device="cpu", tile=64, overlap=8, batch_size=2))
    out = enhancer.enhance(dark_photo(100, 150), events.append)
    assert out.shape == (100, 150, 3)
    done = [e.done for e in events]
    assert done == sorted(done) and events[-1].done == events[-1].total == len(plan_tiles(100, 150, 64, 64, 8))


@pytest.mark.parametrize("bad", [dict(tile=32), dict(tile=128, overlap=64), dict(batch_size=0), dict(tile=-1)])
def test_inference_config_is_validated(bad):
    from lowlight_cli.errors import ConfigError

    with pytest.raises(ConfigError):
        InferenceConfig(**bad)


def test_cpu_refuses_half_precision():
    from lowlight_cli.errors import UsageError

    with pytest.raises(UsageError):
        Enhancer(create_model("gamma"), InferenceConfig(device="cpu", precision="fp16"))


def test_out_of_memory_halves_the_tile_and_says_so():
    from lowlight_cli.inference.engine import Notice, run_with_tile_fallback

    tried, notices = [], []

    def run(tile: int) -> torch.Tensor:
        tried.append(tile)
        if tile == 0 or tile > 256:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return torch.zeros(1)

    _, used = run_with_tile_fallback(run, 1024, 3000, 4, notices.append)
    assert tried == [1024, 512, 256] and used == 256
    assert all(isinstance(n, Notice) and "retrying with tile" in n.message for n in notices)
    tried.clear()
    _, used = run_with_tile_fallback(run, 0, 1500, 4, notices.append)  # whole image -> tiles
    assert tried[0] == 0 and used <= 256

    def never(tile: int) -> torch.Tensor:
        raise torch.OutOfMemoryError("simulated")

    with pytest.raises(torch.OutOfMemoryError):
        run_with_tile_fallback(never, 256, 1000, 1)


def test_non_finite_half_precision_output_is_redone_in_fp32():
    from lowlight_cli.inference.engine import Notice, guarded_forward

    class OverflowsInHalf(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.nn.functional.linear(x, torch.eye(x.shape[-1]))  # autocast runs this in bf16
            return torch.full_like(y, float("nan")) if y.dtype == torch.bfloat16 else y.float() * 0.5

    notices = []
    x = torch.rand(1, 3, 8, 8)
    out = guarded_forward(OverflowsInHalf(), x, "bf16", torch.device("cpu"), notices.append)
    assert torch.isfinite(out).all() and torch.allclose(out, x * 0.5)
    assert len(notices) == 1 and isinstance(notices[0], Notice) and "fp32" in notices[0].message


gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_gpu_tiled_matches_cpu_whole(precision):
    model = _crnet_with_active_attention("crnet-s")
    image = torch.from_numpy(dark_photo(384, 512)).permute(2, 0, 1)[None]
    with torch.no_grad():
        reference = tiled_forward(model, image, tile=0, multiple=4).clamp(0, 1)
    enhancer = Enhancer(model, InferenceConfig(device="cuda", precision=precision, tile=256, overlap=32, batch_size=4))
    out = enhancer.enhance_tensor(image)
    assert _psnr(out, reference) >= (40.0 if precision == "fp32" else 30.0)


@pytest.mark.parametrize("size,tile", [((1080, 1920), 1024), ((3000, 4000), 2048), ((400, 600), 1024)])
def test_tiling_costs_only_the_overlap(size, tile):
    """Issue 15: 1920x1080 in 1024-px tiles ran 4 tiles of 1024x1024 (2x the pixels). Balanced
    tiles process at most a few percent more pixels than the photo has, and a batch never holds
    more pixels than one tile x tile square."""
    seen = []

    def fn(batch: torch.Tensor) -> torch.Tensor:
        seen.append(batch.shape)
        assert batch.shape[0] * batch.shape[-2] * batch.shape[-1] <= tile * tile
        return batch * 0.5

    image = torch.rand(1, 3, *size)
    out = tiled_forward(fn, image, tile=tile, overlap=32, batch_size=4, multiple=8)
    processed = sum(s[0] * s[-2] * s[-1] for s in seen)
    assert processed <= 1.08 * size[0] * size[1]
    assert torch.allclose(out, image * 0.5, atol=1e-6)


# ---- integer photos in, integer photos out, no whole-image float copy (Enhancer.enhance_pixels) ------
@pytest.mark.parametrize("name", ["gamma", "crnet-tiny"])
@pytest.mark.parametrize("tile", [0, 64])
def test_enhance_pixels_equals_the_float_path_at_both_bit_depths(name, tile):
    from lowlight_cli.io import from_float, to_float

    model = create_model(name, pretrained=False)
    enhancer = Enhancer(model, InferenceConfig(device="cpu", tile=tile, overlap=8))
    rgb = dark_photo(90, 131)
    for depth, dtype in ((8, np.uint8), (16, np.uint16)):
        pixels = from_float(rgb, depth)
        out = enhancer.enhance_pixels(pixels)
        assert out.dtype == dtype and out.shape == pixels.shape
        expected = from_float(enhancer.enhance(to_float(pixels)), depth)
        assert np.array_equal(out, expected)
    gray = from_float(np.repeat(rgb.mean(axis=2, keepdims=True), 3, axis=2), 8)
    out = enhancer.enhance_pixels(gray, gray=True)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 0], out[..., 2])


def test_tiled_rows_hands_on_each_row_once_top_to_bottom():
    bands = []
    image = torch.rand(1, 3, 300, 410)
    tiled_rows_fn = __import__("lowlight_cli.inference.tiling", fromlist=["tiled_rows"])
    tiled_rows_fn.tiled_rows(lambda b: b * 0.5, tiled_rows_fn.tensor_reader(image), 300, 410,
                             lambda top, rows: bands.append((top, rows.clone())), tile=128, overlap=16, multiple=8)
    tops = [top for top, _ in bands]
    assert tops[0] == 0 and tops == sorted(tops) and len(bands) > 1
    assert all(a + r.shape[-2] == b for (a, r), b in zip(bands, tops[1:]))
    assert bands[-1][0] + bands[-1][1].shape[-2] == 300
    assert torch.allclose(torch.cat([r for _, r in bands], dim=2), image * 0.5, atol=1e-6)


def test_enhance_pixels_never_holds_the_photo_in_float():
    """Issue 15's flat memory: the photo is converted to float a tile at a time, and the output
    rounded band by band; numpy never allocates a float copy of the whole photo (torch tensors
    are the tiles and one strip of tiles)."""
    import tracemalloc

    enhancer = Enhancer(create_model("gamma"), InferenceConfig(device="cpu", tile=128, overlap=16))
    pixels = (np.random.default_rng(0).random((600, 900, 3)) * 80).astype(np.uint8)
    whole_float = pixels.size * 4
    tracemalloc.start()
    try:
        out = enhancer.enhance_pixels(pixels)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.shape == pixels.shape
    assert peak < pixels.nbytes + whole_float / 2, (peak, whole_float)  # the uint8 output and a band of float
    from lowlight_cli.io import from_float, to_float

    tracemalloc.start()  # the float path the CLI took before: fails the same bound
    try:
        from_float(enhancer.enhance(to_float(pixels)), 8)
        _, float_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert float_peak > pixels.nbytes + whole_float / 2
