"""Mamba's selective scan in pure PyTorch: chunked, exact, stable, bounded memory, ONNX-exportable.

The selective scan (Gu & Dao, Mamba, 2023) runs, for every channel ``d`` and state ``n``, the
linear recurrence

    h[t] = exp(delta[d, t] * A[d, n]) * h[t-1] + delta[d, t] * B[n, t] * u[d, t]
    y[d, t] = sum_n C[n, t] * h[t] + D[d] * u[d, t]

with ``delta = softplus(delta_raw + delta_bias)`` > 0 and ``A < 0``, so every decay factor lies in
``(0, 1]``. A Python loop over the ``L`` positions is slow (``L`` steps of tiny tensors) and, under
autograd, keeps ``L`` copies of the ``D x N`` state for the backward pass.

Here the sequence is cut into chunks of ``chunk`` positions. Within a chunk the recurrence is an
associative scan over pairs ``(decay, input)`` and is solved by a parallel prefix (Hillis-Steele):
``log2(chunk)`` vectorised steps, each multiplying decay factors, so nothing is ever exponentiated
beyond ``exp(delta * A) <= 1``: products of factors in ``(0, 1]`` can underflow to 0 (correctly: the
state is forgotten) but never overflow, whatever ``delta`` and ``A`` are. (The cumulative-sum form
``exp(S_t) * cumsum(exp(-S_s) x_s)`` needs ``exp(-S_s)``, which overflows float32 once ``|A| *
sum(delta)`` over a chunk passes about 88; at Mamba's initialisation, ``|A|`` up to 16 and
``delta`` up to 0.1, 55 positions suffice. The stable alternative, a decay matrix
``exp(S_t - S_s)`` for every pair ``s <= t`` of a chunk, costs ``chunk`` times more exponentials than
the prefix, which forms one ``exp(delta * A)`` per position and ``log2(chunk)`` products.) The state
is carried from one chunk to the next, so working memory is a few ``batch x D x chunk x N`` tensors.

Training uses a custom autograd function that saves only the inputs and the state at each chunk
start (``L / chunk`` states), and in the backward pass recomputes each chunk's states from its
start state, runs the adjoint recurrence ``g[t] = C[t] dy[t] + exp(delta[t+1] A) g[t+1]`` chunk by
chunk from the end, and forms the gradients of every input from ``g`` and the states: the memory of
the fused CUDA kernel's strategy, in PyTorch.

Under ``torch.jit.trace`` (ONNX export) the chunk loop is compiled with TorchScript, so the graph
holds an ONNX ``Loop`` over however many chunks the input has, and the exported file accepts any
image size. With ``mamba_ssm`` installed and CUDA tensors, its fused kernel is used instead.

:func:`cross_scan` and :func:`cross_merge` give SS2D's (VMamba's) four scan orders of an image:
row-major, column-major, and both reversed.
"""

from __future__ import annotations

import functools
import warnings
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

# positions per chunk: on the development CPU 8 and 16 ran equally fast and 32 or 64 up to 3x
# slower (benchmarks/scan_speed.py --chunks); 16 keeps half as many states as 8 for the backward
# pass. On GPUs each chunk costs a few kernel launches, so longer chunks (not measured: no GPU here)
CHUNK_CPU = 16
CHUNK_GPU = 128
BACKENDS = ("auto", "chunked", "fused")


def linear_scan_(decay: Tensor, x: Tensor, reverse: bool) -> Tensor:
    """Solve ``h[t] = decay[t] * h[t-1] + x[t]`` along dim 0 with ``h[-1] = 0``, in place.

    With ``reverse`` the recurrence runs from the end: ``h[t] = decay[t] * h[t+1] + x[t]``.
    Hillis-Steele parallel prefix: ``ceil(log2(T))`` vectorised steps; only products of decay
    factors are formed, so factors in ``[0, 1]`` cannot overflow. The scan dimension is the
    outermost, so every step works on contiguous memory.

    Args:
        decay: ``(T, ...)`` factors, typically in ``[0, 1]``; overwritten (scratch space).
        x: ``(T, ...)`` inputs; overwritten with ``h``.

    Returns:
        ``x``, now holding ``h`` ``(T, ...)``.
    """
    length = x.shape[0]
    step = 1
    while step < length:
        rest = length - step
        if reverse:
            x[:rest] += decay[:rest] * x[step:]
            if 2 * step < length:
                decay[:rest] = decay[:rest] * decay[step:]
        else:
            x[step:] += decay[step:] * x[:rest]
            if 2 * step < length:
                decay[step:] = decay[step:] * decay[:rest]
        step *= 2
    return x


def time_major(x: Tensor, batch: int, length: int, groups: int) -> Tensor:
    """``(batch, D, L)`` -> ``(L, batch, G, 1, D/G)``, contiguous (a copy).

    The scan's working layout: the position outermost, so a chunk is one contiguous block, and the
    channels innermost, so broadcasts and reductions over the state axis run along contiguous rows
    of ``D/G`` values (4-5x faster on CPUs than states innermost). A strided view would make every
    later operation strided too, hence the copy. The sizes are passed in: see :func:`selective_scan`.
    """
    return x.permute(2, 0, 1).contiguous().reshape(length, batch, groups, 1, -1)


def channels_first(y: Tensor, batch: int, channels: int, length: int) -> Tensor:
    """Undo :func:`time_major`: ``(L, batch, G, 1, D/G)`` -> ``(batch, D, L)`` contiguous.

    The sizes are passed in: see :func:`selective_scan`.
    """
    return y.reshape(length, batch, channels).permute(1, 2, 0).contiguous()


def chunk_states(decay: Tensor, u: Tensor, delta: Tensor, B: Tensor, h: Tensor) -> Tensor:
    """The states of one chunk: ``(T, batch, G, N, D/G)``, from the state ``h`` before it.

    Args:
        decay: ``exp(delta * A)`` of the chunk ``(T, batch, G, N, D/G)``; overwritten.
        u, delta: ``(T, batch, G, 1, D/G)``; B: ``(T, batch, G, N, 1)``; h: ``(batch, G, N, D/G)``.
    """
    x = (delta * u) * B
    x[0] += decay[0] * h
    return linear_scan_(decay, x, False)


def chunked_scan(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk: int, keep_states: bool
) -> Tuple[Tensor, Tensor]:
    """The scan without skip term, chunk by chunk, in the time-major layout.

    Args:
        u: ``(L, batch, G, 1, D/G)`` inputs (:func:`time_major`).
        delta: ``(L, batch, G, 1, D/G)`` step sizes, > 0 (already through softplus).
        A: ``(G, N, D/G)`` state matrix diagonal, < 0.
        B, C: ``(L, batch, G, N, 1)``: one per group of ``D/G`` channels.
        chunk: positions per chunk, >= 1.
        keep_states: also return the state before each chunk (for the backward pass).

    Returns:
        ``y = sum_n C h`` ``(L, batch, G, 1, D/G)``, and the states ``(ceil(L / chunk), batch, G, N,
        D/G)`` at the chunk starts (an empty tensor unless ``keep_states``).
    """
    length = u.shape[0]
    h = torch.zeros_like(u[0] * B[0])  # (batch, G, N, D/G)
    # outputs allocated once: small blocks kept from every chunk would fragment the heap between
    # the chunks' temporaries (glibc then grew a 512x512 SS2D scan by 13 inputs' worth of memory)
    y = torch.empty_like(u)
    chunks = -(-length // chunk)
    states = torch.empty((chunks if keep_states else 0, *h.shape), dtype=u.dtype, device=u.device)
    for index in range(chunks):
        start, stop = index * chunk, min(index * chunk + chunk, length)
        if keep_states:
            states[index] = h
        hs = chunk_states(torch.exp(delta[start:stop] * A), u[start:stop], delta[start:stop], B[start:stop], h)
        y[start:stop] = (hs * C[start:stop]).sum(-2, keepdim=True)
        h = hs[-1].clone()  # a copy: a view would keep the whole chunk alive
    return y, states


def traceable_chunked_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk: int) -> Tensor:
    """:func:`chunked_scan`'s ``y`` for TorchScript and ONNX export (same arguments).

    The chunk outputs are gathered in a list and concatenated once: written into a preallocated
    output instead, each chunk of an ONNX ``Loop`` copies the whole output (onnxruntime's time grew
    8x for 4x the pixels). The initial state comes from broadcasting, not from sizes: under
    ONNX export the tracer can freeze some tensors' sizes to those of the example input.
    """
    length = u.shape[0]
    h = torch.zeros_like(u[0] * B[0])
    ys: List[Tensor] = []
    for start in range(0, length, chunk):
        stop = min(start + chunk, length)
        hs = chunk_states(torch.exp(delta[start:stop] * A), u[start:stop], delta[start:stop], B[start:stop], h)
        ys.append((hs * C[start:stop]).sum(-2, keepdim=True))
        h = hs[-1]
    return torch.cat(ys, 0)


def chunked_scan_grads(
    grad_y: Tensor, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, starts: Tensor, chunk: int
) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients of :func:`chunked_scan`'s ``y`` w.r.t. ``u, delta, A, B, C``, chunk by chunk from the end.

    With ``a[t] = exp(delta[t] A)`` and the adjoint ``g[t] = C[t] dy[t] + a[t+1] g[t+1]``:
    ``du = delta sum_n g B``, ``ddelta = sum_n (g h[t-1] a A + g B u)``, ``dA = sum_t g h[t-1] a delta``,
    ``dB = sum_d g delta u``, ``dC = sum_d dy h``. Each chunk's states are recomputed from
    ``starts`` (memory: a few chunk-sized tensors besides the outputs).

    Args:
        grad_y: ``(L, batch, G, 1, D/G)``; the other arguments as :func:`chunked_scan` takes and
            returns them.

    Returns:
        ``(du, ddelta, dA, dB, dC)`` shaped like ``u, delta, A, B, C``.
    """
    grad_u, grad_delta = torch.empty_like(u), torch.empty_like(delta)
    grad_a = torch.zeros_like(A)
    grad_b, grad_c = torch.empty_like(B), torch.empty_like(C)
    carry = torch.zeros_like(starts[0])
    for index in reversed(range(starts.shape[0])):
        start = index * chunk
        stop = min(start + chunk, u.shape[0])
        step, u_c, g_y, b_c = delta[start:stop], u[start:stop], grad_y[start:stop], B[start:stop]
        step_u = step * u_c
        decay = torch.exp(step * A)
        h0 = starts[index]
        hs = chunk_states(decay.clone(), u_c, step, b_c, h0)
        g = g_y * C[start:stop]
        g[-1] += carry
        ahead = torch.zeros_like(decay)  # ahead[t] = a[t+1]: the factor from t to t+1
        ahead[:-1] = decay[1:]
        g = linear_scan_(ahead, g, True)
        carry = decay[0] * g[0]
        previous = torch.cat((h0.unsqueeze(0), hs[:-1]), dim=0)
        weighted = g * previous * decay  # dL/d(delta * A), per state
        g_b = (g * b_c).sum(-2, keepdim=True)
        grad_delta[start:stop] = (weighted * A).sum(-2, keepdim=True) + u_c * g_b
        grad_u[start:stop] = step * g_b
        grad_a += (weighted * step).sum(dim=(0, 1))
        grad_c[start:stop] = (hs * g_y).sum(-1, keepdim=True)
        grad_b[start:stop] = (g * step_u).sum(-1, keepdim=True)
    return grad_u, grad_delta, grad_a, grad_b, grad_c


class _ChunkedScan(torch.autograd.Function):
    """Autograd of :func:`chunked_scan` that stores the chunk-start states, not every state."""

    @staticmethod
    def forward(ctx, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk: int) -> Tensor:  # noqa: ANN001
        y, starts = chunked_scan(u, delta, A, B, C, chunk, True)
        ctx.save_for_backward(u, delta, A, B, C, starts)
        ctx.chunk = chunk
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: Tensor) -> tuple:  # noqa: ANN001
        u, delta, A, B, C, starts = ctx.saved_tensors
        return (*chunked_scan_grads(grad_y.contiguous(), u, delta, A, B, C, starts, ctx.chunk), None)


@functools.cache
def _scripted_chunked_scan():  # noqa: ANN202 - a torch.jit.ScriptFunction
    """:func:`traceable_chunked_scan` compiled by TorchScript (once, on first export): its chunk
    loop stays a loop."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # as the TorchScript-based ONNX exporter it serves
        return torch.jit.script(traceable_chunked_scan)


@functools.cache
def _fused_kernel():  # noqa: ANN202 - mamba_ssm's selective_scan_fn or None
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:  # noqa: BLE001 - a broken CUDA extension fails in many ways; the chunked scan stands in
        return None
    return selective_scan_fn


def fused_kernel_available(device: torch.device | str) -> bool:
    """True when ``mamba_ssm``'s fused CUDA kernel can run the scan on ``device``."""
    return torch.device(device).type == "cuda" and _fused_kernel() is not None


def _check_inputs(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None, bias: Tensor | None) -> None:
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(f"u and delta must both be (batch, D, L), got {tuple(u.shape)} and {tuple(delta.shape)}")
    batch, channels, length = u.shape
    if A.dim() != 2 or A.shape[0] != channels:
        raise ValueError(f"A must be (D, N) = ({channels}, N), got {tuple(A.shape)}")
    state = A.shape[1]
    for name, t in (("B", B), ("C", C)):
        grouped = t.dim() == 4 and t.shape[1] >= 1 and channels % t.shape[1] == 0
        if t.shape[0] != batch or t.shape[-2:] != (state, length) or not (t.dim() == 3 or grouped):
            raise ValueError(f"{name} must be (batch, N, L) or (batch, G, N, L) with G dividing D={channels} "
                             f"(batch {batch}, N {state}, L {length}), got {tuple(t.shape)}")
    if B.dim() == 4 and C.dim() == 4 and B.shape[1] != C.shape[1]:
        raise ValueError(f"B and C must have the same number of groups, got {B.shape[1]} and {C.shape[1]}")
    for name, t in (("D", D), ("delta_bias", bias)):
        if t is not None and t.shape != (channels,):
            raise ValueError(f"{name} must be ({channels},), got {tuple(t.shape)}")


def selective_scan(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    delta_bias: Tensor | None = None,
    *,
    delta_softplus: bool = True,
    chunk: int | None = None,
    backend: str = "auto",
) -> Tensor:
    """Mamba's selective scan (``selective_scan_fn`` semantics, without ``z``), differentiable.

    Args:
        u: ``(batch, D, L)`` input sequence.
        delta: ``(batch, D, L)`` raw step sizes; ``delta + delta_bias``, through softplus when
            ``delta_softplus``, must be > 0.
        A: ``(D, N)`` state matrix diagonal, < 0 (Mamba stores ``-exp(A_log)``).
        B, C: ``(batch, N, L)``, or ``(batch, G, N, L)`` grouped: channel ``d`` uses group
            ``d // (D / G)`` (SS2D: one group per scan direction).
        D: ``(D,)`` skip weights, or None.
        delta_bias: ``(D,)`` added to ``delta`` before the softplus, or None.
        chunk: positions per chunk (memory ~ a few ``batch * D * chunk * N`` values); any
            value gives the same result up to rounding. Default :data:`CHUNK_CPU` on the CPU,
            :data:`CHUNK_GPU` elsewhere.
        backend: ``auto`` (the fused ``mamba_ssm`` kernel for CUDA tensors when installed,
            otherwise chunked), ``chunked`` or ``fused`` (raises if unavailable).

    Returns:
        ``y`` ``(batch, D, L)`` in float32 (float64 for float64 inputs), whatever the input dtype
        and autocast state: the recurrence is never run in half precision.

    Raises:
        ValueError: shapes that do not fit together, a chunk < 1, an unknown or unavailable backend.

    Example:
        >>> u = torch.ones(1, 1, 3); A = torch.full((1, 1), -1e9)  # forget at once: y = delta u B C
        >>> selective_scan(u, torch.ones(1, 1, 3), A, torch.ones(1, 1, 3), torch.ones(1, 1, 3),
        ...                delta_softplus=False).tolist()
        [[[1.0, 1.0, 1.0]]]
    """
    _check_inputs(u, delta, A, B, C, D, delta_bias)
    if chunk is None:
        chunk = CHUNK_CPU if u.device.type == "cpu" else CHUNK_GPU
    if chunk < 1 or backend not in BACKENDS:
        raise ValueError(f"need chunk >= 1 and backend in {BACKENDS}, got {chunk} and {backend!r}")
    tracing = torch.jit.is_tracing()
    fused = backend == "fused" or (backend == "auto" and not tracing and fused_kernel_available(u.device))
    if fused and not fused_kernel_available(u.device):
        raise ValueError("the fused backend needs the mamba_ssm package and CUDA tensors")
    compute = torch.promote_types(u.dtype, torch.float32)
    # every size comes from u: under ONNX export the tracer may freeze other tensors' sizes (those
    # of a TorchScript result, or of one whose shape ONNX cannot infer) to the example input's
    batch, channels, length = u.shape
    state = A.shape[1]
    with torch.autocast(u.device.type, enabled=False):
        u, delta, A, B, C = (t.to(compute) for t in (u, delta, A, B, C))
        D = None if D is None else D.to(compute)
        delta_bias = None if delta_bias is None else delta_bias.to(compute)
        if fused:
            args = (t.contiguous() for t in (u, delta, A, B, C))
            return _fused_kernel()(*args, D, None, delta_bias, delta_softplus)
        groups = B.shape[1] if B.dim() == 4 else 1
        u_t, delta_t = time_major(u, batch, length, groups), time_major(delta, batch, length, groups)
        del delta  # the caller may hold it; this frame does not need to
        if delta_bias is not None:  # in place on the copy: add's backward needs no values
            delta_t.add_(delta_bias.reshape(groups, 1, -1))
        if delta_softplus:
            delta_t = F.softplus(delta_t)
        b_t, c_t = (t.reshape(batch, groups, state, length).permute(3, 0, 1, 2).unsqueeze(-1).contiguous() for t in (B, C))
        a_t = A.reshape(groups, -1, state).transpose(1, 2).contiguous()  # (G, N, D/G)
        if tracing:
            y = _scripted_chunked_scan()(u_t, delta_t, a_t, b_t, c_t, chunk)
        elif torch.is_grad_enabled() and any(t.requires_grad for t in (u_t, delta_t, a_t, b_t, c_t)):
            y = _ChunkedScan.apply(u_t, delta_t, a_t, b_t, c_t, chunk)
        else:
            y = chunked_scan(u_t, delta_t, a_t, b_t, c_t, chunk, False)[0]
        del delta_t, b_t, c_t
        if D is not None:  # in place: the scan's output is saved by nothing
            y.addcmul_(u_t, D.reshape(groups, 1, -1))
        return channels_first(y, batch, channels, length)


DIRECTIONS = ("row-major", "column-major", "row-major reversed", "column-major reversed")


def cross_scan(x: Tensor) -> Tensor:
    """SS2D's four scan orders of a feature map: ``(batch, C, H, W)`` -> ``(batch, 4, C, H*W)``.

    Direction 0 visits pixels row by row (``x[i, j]`` at position ``i*W + j``), 1 column by column
    (``j*H + i``), 2 and 3 the same orders reversed (:data:`DIRECTIONS`).
    """
    rows = x.flatten(2)
    columns = x.transpose(-1, -2).flatten(2)
    return torch.stack((rows, columns, rows.flip(-1), columns.flip(-1)), dim=1)


def cross_merge(y: Tensor, height: int, width: int) -> Tensor:
    """Undo :func:`cross_scan` for each direction and sum: ``(batch, 4, C, H*W)`` -> ``(batch, C, H, W)``.

    The adjoint of :func:`cross_scan`: ``<cross_scan(x), y> == <x, cross_merge(y, H, W)>``.
    """
    channels = y.shape[2]
    rows = y[:, 0] + y[:, 2].flip(-1)
    columns = y[:, 1] + y[:, 3].flip(-1)
    # -1 for the batch: under ONNX export a scan output's traced batch size would be frozen
    merged = rows.reshape(-1, channels, height, width)
    return merged + columns.reshape(-1, channels, width, height).transpose(-1, -2)
