"""Selective scan (Mamba) in pure PyTorch: against a sequential reference written here, gradients,
stability, bounded memory, SS2D's four scan orders, ONNX export; the fused kernel when present."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lowlight_cli.models.selective_scan import (
    _ChunkedScan,
    _scripted_chunked_scan,
    chunked_scan,
    cross_merge,
    cross_scan,
    fused_kernel_available,
    selective_scan,
)


def reference_scan(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=True):
    """The recurrence as Mamba defines it, one position at a time (mamba_ssm's selective_scan_ref
    semantics): h = exp(delta A) h + delta B u, y = C.h + D u; grouped B/C serve D/G channels each."""
    if delta_bias is not None:
        delta = delta + delta_bias[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    batch, channels, length = u.shape
    if B.dim() == 3:
        B, C = B[:, None], C[:, None]
    B = B.repeat_interleave(channels // B.shape[1], dim=1)  # (batch, D, N, L)
    C = C.repeat_interleave(channels // C.shape[1], dim=1)
    h = u.new_zeros(batch, channels, A.shape[1])
    ys = []
    for t in range(length):
        h = torch.exp(delta[:, :, t, None] * A) * h + (delta[:, :, t] * u[:, :, t])[..., None] * B[..., t]
        ys.append((h * C[..., t]).sum(-1))
    y = torch.stack(ys, dim=-1)
    return y if D is None else y + u * D[:, None]


def random_inputs(batch=2, channels=6, state=4, length=37, groups=None, dtype=torch.float64, seed=0):
    """u, delta, A, B, C, D, delta_bias: random, A in [-3.1, -0.1], all requiring grad."""
    g = torch.Generator().manual_seed(seed)
    bc_shape = (batch, state, length) if groups is None else (batch, groups, state, length)
    tensors = (
        torch.randn(batch, channels, length, generator=g, dtype=dtype),
        torch.randn(batch, channels, length, generator=g, dtype=dtype),
        -(torch.rand(channels, state, generator=g, dtype=dtype) * 3 + 0.1),
        torch.randn(bc_shape, generator=g, dtype=dtype),
        torch.randn(bc_shape, generator=g, dtype=dtype),
        torch.randn(channels, generator=g, dtype=dtype),
        torch.randn(channels, generator=g, dtype=dtype),
    )
    return tuple(t.requires_grad_() for t in tensors)


def grads(y, inputs, seed=1):
    """Gradients of a random projection <y, w> w.r.t. every input."""
    w = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=y.dtype).to(y.device)
    return torch.autograd.grad((y * w).sum(), inputs)


@pytest.mark.parametrize("groups", [None, 1, 3])
@pytest.mark.parametrize("chunk", [1, 5, 16, 64])
def test_matches_sequential_reference_forward_and_gradients(groups, chunk):
    inputs = random_inputs(groups=groups)
    expected = reference_scan(*inputs)
    got = selective_scan(*inputs, chunk=chunk)
    assert got.dtype == torch.float64 and got.shape == expected.shape
    assert torch.allclose(got, expected, rtol=0, atol=1e-5)
    for name, a, b in zip("u delta A B C D delta_bias".split(), grads(got, inputs), grads(expected, inputs)):
        assert a.shape == b.shape and torch.allclose(a, b, rtol=0, atol=1e-5), name


def test_options_without_bias_softplus_or_skip():
    u, delta, A, B, C, _, _ = random_inputs(groups=2)
    positive = F.softplus(delta).detach().requires_grad_()
    expected = reference_scan(u, positive, A, B, C, delta_softplus=False)
    got = selective_scan(u, positive, A, B, C, delta_softplus=False, chunk=8)
    assert torch.allclose(got, expected, atol=1e-10)
    inputs = (u, positive, A, B, C)
    for a, b in zip(grads(got, inputs), grads(expected, inputs)):
        assert torch.allclose(a, b, atol=1e-10)


def test_custom_backward_passes_gradcheck():
    """Finite differences of the chunked scan's own autograd function, in its working layout."""
    length, batch, groups, state, per_group = 11, 1, 2, 3, 2
    g = torch.Generator().manual_seed(5)
    u = torch.randn(length, batch, groups, 1, per_group, generator=g, dtype=torch.float64)
    delta = torch.rand(length, batch, groups, 1, per_group, generator=g, dtype=torch.float64) + 0.1
    A = -torch.rand(groups, state, per_group, generator=g, dtype=torch.float64) - 0.1
    B, C = (torch.randn(length, batch, groups, state, 1, generator=g, dtype=torch.float64) for _ in range(2))
    inputs = tuple(t.requires_grad_() for t in (u, delta, A, B, C))
    assert torch.autograd.gradcheck(lambda *t: _ChunkedScan.apply(*t, 4), inputs)


def test_no_grad_inference_and_float32_agree_with_the_float64_reference():
    inputs = random_inputs(groups=3)
    expected = reference_scan(*inputs).detach()
    with torch.inference_mode():
        got = selective_scan(*(t.detach().float() for t in inputs))
    assert got.dtype == torch.float32
    assert torch.allclose(got.double(), expected, rtol=1e-4, atol=1e-4)


def test_stable_where_the_cumulative_sum_form_overflows():
    """Steps and decay rates so large that exp(-cumsum(delta A)) overflows float32 after a few
    positions (the cumulative-sum formulation returns inf/nan); the chunked scan stays exact."""
    u, delta, A, B, C, D, bias = (t.detach() for t in random_inputs(channels=4, length=200, groups=2))
    delta = delta * 3 + 4  # softplus(delta) up to ~15
    A = A * 50  # rates down to -155
    big = -(F.softplus(delta[0, 0, :16]) * A[0, 0]).cumsum(0).float()
    assert not torch.isfinite(torch.exp(big)).all()  # the naive form would fail within one chunk
    expected = reference_scan(u, delta, A, B, C, D, bias)
    got = selective_scan(*(t.float() for t in (u, delta, A, B, C, D, bias)), chunk=16)
    assert torch.isfinite(got).all()
    assert torch.allclose(got.double(), expected, rtol=1e-4, atol=1e-4)
    # and long memory (tiny steps): state carried across many chunks
    slow = reference_scan(u, delta * 0 - 12, A / 50, B, C, D, bias)
    assert torch.allclose(selective_scan(u, delta * 0 - 12, A / 50, B, C, D, bias, chunk=7), slow, atol=1e-10)


def test_memory_saved_for_backward_is_bounded_by_the_chunk_starts():
    """Autograd through a loop keeps every state (L x D x N); the custom backward keeps the inputs
    and the state at each chunk start only, and recomputes the rest chunk by chunk."""
    batch, channels, state, length, chunk = 1, 64, 32, 2048, 16
    inputs = random_inputs(batch, channels, state, length, dtype=torch.float32)
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = selective_scan(*inputs, chunk=chunk)
    nbytes = [t.numel() * t.element_size() for t in inputs]
    per_channel = nbytes[0]  # one (batch, D, L) tensor
    chunk_starts = batch * channels * state * (length // chunk) * 4
    # u and delta, each twice (softplus's input and output, the scan's and the skip's u), B, C, A, D
    bound = 4 * per_channel + nbytes[3] + nbytes[4] + nbytes[2] + nbytes[5] + chunk_starts
    all_states = batch * channels * state * length * 4
    assert bound < all_states / 4
    assert sum(saved) <= bound
    y.sum().backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in inputs)


def test_half_precision_and_autocast_run_the_recurrence_in_float32():
    inputs = [t.detach().float() for t in random_inputs(groups=2)]
    expected = selective_scan(*inputs)
    got = selective_scan(*(t.bfloat16() for t in inputs))
    assert got.dtype == torch.float32
    assert torch.allclose(got, expected, atol=0.1, rtol=0.05)  # only the inputs were rounded
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(selective_scan(*inputs), expected)


def test_bad_shapes_and_options_say_what_is_wrong():
    u, delta, A, B, C, D, bias = (t.detach() for t in random_inputs(groups=3))
    with pytest.raises(ValueError, match="A must be"):
        selective_scan(u, delta, A[:, :2].T, B, C)
    with pytest.raises(ValueError, match="B must be"):
        selective_scan(u, delta, A, B[:, :, :3], C)
    with pytest.raises(ValueError, match="G dividing"):
        selective_scan(u, delta, A, torch.zeros(2, 4, 4, 37, dtype=u.dtype), C)
    with pytest.raises(ValueError, match="D must be"):
        selective_scan(u, delta, A, B, C, D[:3])
    with pytest.raises(ValueError, match="chunk"):
        selective_scan(u, delta, A, B, C, chunk=0)
    if not fused_kernel_available("cpu"):
        with pytest.raises(ValueError, match="mamba_ssm"):
            selective_scan(u, delta, A, B, C, backend="fused")


# ---- SS2D: four scan orders of an image ---------------------------------------------------------
def scan_orders(height, width):
    """Pixel coordinates in visiting order: row-major, column-major, and both reversed."""
    rows = [(i, j) for i in range(height) for j in range(width)]
    columns = [(i, j) for j in range(width) for i in range(height)]
    return [rows, columns, rows[::-1], columns[::-1]]


def test_cross_scan_visits_pixels_in_the_four_orders():
    x = torch.randn(2, 3, 4, 5)
    xs = cross_scan(x)
    assert xs.shape == (2, 4, 3, 20)
    for k, order in enumerate(scan_orders(4, 5)):
        expected = torch.stack([x[:, :, i, j] for i, j in order], dim=-1)
        assert torch.equal(xs[:, k], expected)


def test_cross_merge_is_the_adjoint_of_cross_scan():
    x, y = torch.randn(2, 3, 4, 5, dtype=torch.float64), torch.randn(2, 4, 3, 20, dtype=torch.float64)
    assert torch.allclose((cross_scan(x) * y).sum(), (x * cross_merge(y, 4, 5)).sum())


def test_four_direction_scan_matches_a_per_direction_reference():
    """Image 5x7, 3 channels, a scan per direction with its own A, D, bias (K*D channels) and
    its own B, C (one group per direction), merged back to pixels and summed."""
    height, width, channels, state = 5, 7, 3, 4
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, channels, height, width, generator=g, dtype=torch.float64, requires_grad=True)
    _, delta, A, B, C, D, bias = random_inputs(2, 4 * channels, state, height * width, groups=4, seed=4)
    got = cross_merge(selective_scan(cross_scan(x).flatten(1, 2), delta, A, B, C, D, bias, chunk=8).unflatten(1, (4, channels)),
                      height, width)
    expected = torch.zeros_like(got)
    for k, order in enumerate(scan_orders(height, width)):
        part = slice(k * channels, (k + 1) * channels)
        sequence = torch.stack([x[:, :, i, j] for i, j in order], dim=-1)
        y = reference_scan(sequence, delta[:, part], A[part], B[:, k], C[:, k], D[part], bias[part])
        scattered = torch.zeros_like(expected)
        for position, (i, j) in enumerate(order):
            scattered[:, :, i, j] = y[:, :, position]
        expected = expected + scattered
    assert torch.allclose(got, expected, rtol=0, atol=1e-5)
    inputs = (x, delta, A, B, C, D, bias)
    for a, b in zip(grads(got, inputs), grads(expected, inputs)):
        assert torch.allclose(a, b, rtol=0, atol=1e-5)


# ---- export and fused kernel --------------------------------------------------------------------
class ScanImage(torch.nn.Module):
    """A tiny image model around the 2-D scan: 1x1 convs give u, delta, B, C per direction."""

    def __init__(self, channels=4, state=3):
        super().__init__()
        self.channels, self.state = channels, state
        self.embed = torch.nn.Conv2d(3, channels, 1)
        self.params = torch.nn.Conv1d(4 * channels, 4 * (channels + 2 * state), 1, groups=4)
        self.A_log = torch.nn.Parameter(torch.rand(4 * channels, state))
        self.D = torch.nn.Parameter(torch.randn(4 * channels))
        self.out = torch.nn.Conv2d(channels, 3, 1)

    def forward(self, image):
        batch, _, height, width = image.shape
        xs = cross_scan(self.embed(image)).flatten(1, 2)  # (batch, 4C, L)
        p = self.params(xs).unflatten(1, (4, -1))
        delta, B, C = p.split([self.channels, self.state, self.state], dim=2)
        y = selective_scan(xs, delta.flatten(1, 2), -torch.exp(self.A_log), B, C, self.D)
        return self.out(cross_merge(y.unflatten(1, (4, self.channels)), height, width))


def test_onnx_export_runs_any_size_in_onnxruntime(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = ScanImage().eval()
    path = tmp_path / "scan.onnx"
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's and tracer's notices
        torch.onnx.export(model, (torch.rand(1, 3, 12, 20),), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": axes, "output": axes})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(2, 3, 24, 40), (1, 3, 7, 33)]:  # other sizes than traced, lengths not multiples of the chunk
        x = torch.rand(shape)
        with torch.no_grad():
            expected = model(x)
        got = session.run(None, {"input": x.numpy()})[0]
        assert got.shape == tuple(expected.shape)
        assert np.abs(got - expected.numpy()).max() <= 1e-5


def test_scripted_scan_is_the_eager_scan():
    """The TorchScript compilation that ONNX export traces computes what the eager code does."""
    g = torch.Generator().manual_seed(6)
    u, delta = torch.randn(37, 2, 3, 1, 2, generator=g), torch.rand(37, 2, 3, 1, 2, generator=g)
    A, B, C = -torch.rand(3, 4, 2, generator=g), torch.randn(37, 2, 3, 4, 1, generator=g), torch.randn(37, 2, 3, 4, 1, generator=g)
    eager = chunked_scan(u, delta, A, B, C, 8, False)[0]
    assert torch.allclose(_scripted_chunked_scan()(u, delta, A, B, C, 8), eager)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.gpu
@needs_cuda
def test_chunked_scan_on_cuda_matches_cpu():
    inputs = [t.detach().float() for t in random_inputs(groups=3)]
    expected = selective_scan(*inputs, backend="chunked")
    cuda = [t.cuda().requires_grad_() for t in inputs]
    got = selective_scan(*cuda, backend="chunked")
    assert torch.allclose(got.cpu(), expected, atol=1e-4)
    got.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in cuda)


@pytest.mark.gpu
@pytest.mark.skipif(not fused_kernel_available("cuda"), reason="needs CUDA and the mamba_ssm package")
def test_fused_kernel_agrees_with_the_chunked_scan():
    inputs = [t.detach().float().cuda() for t in random_inputs(batch=2, channels=64, state=16, length=500, groups=4)]
    results = {}
    for backend in ("fused", "chunked"):
        tensors = [t.clone().requires_grad_() for t in inputs]
        y = selective_scan(*tensors, backend=backend)
        results[backend] = (y, *grads(y, tensors))
    for a, b in zip(results["fused"], results["chunked"]):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-3)
