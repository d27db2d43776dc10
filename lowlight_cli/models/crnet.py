"""CRNet, the comprehensive residual network of Lee, Jang & Kim (CVPRW 2023).

Built as SPEC-crnet.md describes: masked convolutions (gated convs), masked residual blocks, layer
attention (HAN) over the outputs of each recurrence, recurrent groups with a convolutional memory,
per-group stage heads for the progressive loss. Small variants run the body behind a
pixel-unshuffle so that it sees 1/s^2 of the pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
import dataclasses
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import EnhancementModel, ModelInfo, area_mean, check_curve_scale, needs_graph
from .chroma import smooth_chroma
from .noise import IMMERKAER_SCALE, AmplifiedNoise, cell_noise_response, cell_noise_taps
from .products import long_inner_product
from .replicate_conv import conv3x3

PAPER = (
    "Lee, Jang, Kim: Temporally Averaged Regression for Semi-Supervised Low-Light Image "
    "Enhancement, CVPR Workshops 2023"
)
_ACTIVATIONS = ("none", "relu", "lrelu", "elu")
_OUTPUTS = ("residual", "curve")
_PADDINGS = ("zeros", "replicate", "reflect")
# bound of the curve head's input-domain correction: it removes noise, it does not brighten
_CORRECTION_BOUND = 0.05
# the refinement stage's ceiling: below the 255 of an 8-bit output, after rounding
REFINE_CEILING = 254.0 / 255.0
# chroma smoothing takes full effect from this brightening (1 - 1/g: a gain of 2) up, and fades to
# none at gain 1; chosen on LOL validation pairs against 1 - 1/g itself, its square root and 1
# everywhere (docs/crnet-training.md)
CHROMA_FULL_BRIGHTENING = 0.5


@dataclass(frozen=True)
class CRNetConfig:
    """Architecture hyper-parameters (SPEC-crnet.md; defaults are the paper's size).

    Attributes:
        channels: feature width C.
        groups: number of LMRGs (G); also the number of stage images.
        blocks: MRBs per group.
        recurrences: recurrences per group (R); MRB weights are shared across them.
        activation: activation of the masked convolution's feature branch.
        stem_input: ``gamma`` feeds ``cat(x, x ** (1/2.2))``, ``self`` feeds ``cat(x, x)``.
        attention_sign: ``positive`` softmaxes the energy (the paper's formula); ``negative``
            softmaxes its negation (HAN's released code, ``max(E) - E``).
        downscale: run the body at ``1/downscale`` resolution behind pixel-unshuffle (1 = paper).
        global_context: **ours**, not in the paper. An image-level branch: the mean over the whole
            image of a per-pixel embedding of the stem input drives a per-channel scale and shift
            (FiLM) before every group and a per-channel gain on every stage image. Zero-initialised,
            so a model with it starts as the model without it. The mean is taken over the whole
            photo even under tiled inference (see :meth:`CRNet.image_context`).
        context_channels: width of that embedding.
        output: ``residual`` (the paper: each stage is ``x + head(h)``) or ``curve`` (**ours**):
            each stage head gives a bounded input-domain correction ``r`` (full resolution,
            through pixel-shuffle; it removes noise) and a per-channel exposure gain ``g`` in
            ``[1, max_gain]`` (at body resolution, upsampled bilinearly, so it is smooth); the
            stage is the tone curve ``g y / (1 + (g - 1) y)`` of ``y = clamp(x + r)``
            (:func:`gain_curve`). The curve is monotone, keeps 0 at 0 and 1 at 1, never darkens,
            and is linear near black with slope ``g`` (a gain, as a longer exposure gives), so
            blacks stay proportionally dark instead of being lifted as a gamma or iterated
            Zero-DCE curve lifts them; an output is darker than its input only by ``r``.
        max_gain: curve output: the largest exposure gain ``g``.
        curve_shoulder: curve output: the curve's shoulder ``p`` (**ours**): the stage is
            ``g y / (1 + (g^p - 1) y^p)^(1/p)`` (:func:`gain_curve`). ``p = 1`` is the Reinhard-like
            curve above; ``p = 2`` keeps the slope ``g`` further up the tones and bends later, so a
            photo darkened by a gain is brought back nearer that gain in the shadows (the ``p = 1``
            curve reaches a given mid-tone only with a larger ``g``, which lifts blacks). Every
            ``p >= 1`` keeps 0 at 0, 1 at 1, monotone, never darker; 1 and 2 have fast paths.
        highlight_exponent: curve output: the log-gain at a pixel is scaled by ``1 - m^k`` with
            ``m`` the pixel's largest channel and ``k`` this exponent, so bright pixels (lamps,
            sky) are left nearly as they are instead of being pushed to white; 0 turns it off.
        gate_correction: curve output: scale the correction by ``1 - 1/g``, so it acts where the
            curve brightens (noise of dark regions) and vanishes where the gain is ~1 (a
            well-exposed photo, which it would otherwise darken by its learned black-level pull).
        padding_mode: padding of the 3x3 convolutions; ``zeros`` is the paper's, ``replicate``
            (ours) keeps the zero border from darkening the outermost pixels.
        refine_channels: curve output: width of the refinement stage (**ours**; 0 = none), a small
            denoiser at 1/2 resolution on the last stage's curve output (see
            :class:`CurveRefinement`). The body at 1/8 resolution sees noise only through 8x8 blocks;
            this stage works on the brightened image, where the noise it must remove is visible.
        refine_layers: curve output: hidden 3x3 convolutions of the refinement stage.
        chroma_radius: curve output: smooth the final image's chroma with a guided filter of this
            radius, guided by its luma and blended in by the curve's brightening (**ours**; 0 =
            none; :func:`~lowlight_cli.models.chroma.smooth_chroma`): the colour noise that
            brightening amplifies goes, colour edges that follow brightness edges stay, luma and
            unbrightened pixels are untouched. No weights: a checkpoint can switch it on.
        chroma_eps: the guided filter's regulariser on luma variance (``[0, 1]`` scale).
        chroma_luma: the same step also smooths luma, guided by itself with the same window and
            ``eps`` (flat noisy windows averaged, edges and texture above ``eps`` kept), gated alike.
        chroma_noise: the same step's ``eps`` grows with the noise each pixel carries (**ours**;
            0 = a fixed ``eps``): ``eps + chroma_noise * gate * (slope * sigma)^2``, ``sigma`` the
            input's noise over the whole photo (Immerkaer's estimate, carried in the global context
            so tiles agree) and ``slope`` the curve's at the pixel
            (:func:`~lowlight_cli.models.noise.noise_eps`). No weights; needs ``chroma_radius``,
            ``global_context`` and ``downscale >= 3``.
        curve_scale: curve output: run the body on an area-downscaled copy of the input (1/s^2 of
            the pixels, so the body works at ``1/(downscale * curve_scale)`` resolution) and upsample
            its correction and gain maps bilinearly to full resolution, where the curve (and the
            refinement stage) is applied to the full-resolution input: Zero-DCE++'s trick, an
            inference setting for large photos (``--curve-scale``; the weights do not change).
            The global context is still computed from the full-resolution input.
    """

    channels: int = 32
    groups: int = 4
    blocks: int = 5
    recurrences: int = 2
    activation: str = "relu"
    stem_input: str = "gamma"
    attention_sign: str = "positive"
    downscale: int = 1
    global_context: bool = False
    context_channels: int = 64
    output: str = "residual"
    max_gain: float = 64.0
    curve_shoulder: float = 1.0
    highlight_exponent: float = 4.0
    padding_mode: str = "zeros"
    gate_correction: bool = False
    refine_channels: int = 0
    refine_layers: int = 2
    chroma_radius: int = 0
    chroma_eps: float = 1e-4
    chroma_luma: bool = False
    chroma_noise: float = 0.0
    curve_scale: int = 1

    def __post_init__(self) -> None:
        for name in ("channels", "groups", "blocks", "recurrences", "downscale", "context_channels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"crnet {name} must be >= 1, got {getattr(self, name)}")
        if self.activation not in _ACTIVATIONS:
            raise ConfigError(f"crnet activation must be one of {_ACTIVATIONS}, got {self.activation!r}")
        if self.stem_input not in ("gamma", "self"):
            raise ConfigError(f"crnet stem_input must be gamma or self, got {self.stem_input!r}")
        if self.attention_sign not in ("positive", "negative"):
            raise ConfigError("crnet attention_sign must be positive or negative")
        if self.output not in _OUTPUTS:
            raise ConfigError(f"crnet output must be one of {_OUTPUTS}, got {self.output!r}")
        if self.padding_mode not in _PADDINGS:
            raise ConfigError(f"crnet padding_mode must be one of {_PADDINGS}, got {self.padding_mode!r}")
        if self.max_gain <= 1 or self.highlight_exponent < 0:
            raise ConfigError("crnet max_gain must be > 1 and highlight_exponent >= 0")
        if not (isinstance(self.curve_shoulder, (int, float)) and not isinstance(self.curve_shoulder, bool)
                and math.isfinite(self.curve_shoulder) and self.curve_shoulder >= 1):
            raise ConfigError(f"crnet curve_shoulder must be a number >= 1, got {self.curve_shoulder!r}")
        if self.curve_shoulder != 1 and self.output != "curve":
            raise ConfigError(f"crnet curve_shoulder applies to output: curve (this CRNet has output: {self.output})")
        if self.refine_channels < 0 or self.refine_layers < 0:
            raise ConfigError("crnet refine_channels and refine_layers must be >= 0")
        if self.refine_channels and self.output != "curve":
            raise ConfigError("crnet refine_channels needs output: curve (it refines the curve output)")
        if self.chroma_radius < 0 or self.chroma_eps <= 0:
            raise ConfigError("crnet chroma_radius must be >= 0 and chroma_eps > 0")
        if self.chroma_luma and not self.chroma_radius:
            raise ConfigError("crnet chroma_luma needs chroma_radius >= 1 (it is the same filter's luma part)")
        if self.chroma_radius and self.output != "curve":
            raise ConfigError("crnet chroma_radius needs output: curve (the curve's brightening gates it)")
        if not (isinstance(self.chroma_noise, (int, float)) and not isinstance(self.chroma_noise, bool)
                and math.isfinite(self.chroma_noise) and self.chroma_noise >= 0):
            raise ConfigError(f"crnet chroma_noise must be a number >= 0, got {self.chroma_noise!r}")
        if self.chroma_noise and not (self.chroma_radius and self.global_context and self.downscale >= 3):
            raise ConfigError("crnet chroma_noise needs chroma_radius >= 1 (it sets that filter's eps), global_context "
                              "(the photo's noise is a whole-image statistic) and downscale >= 3 (measured in its cells)")
        # a plain int (numpy integers too), for JSON
        object.__setattr__(self, "curve_scale", check_curve_scale(self.curve_scale, "crnet curve_scale"))
        if self.curve_scale > 1 and self.output != "curve":
            raise ConfigError(f"crnet curve_scale applies to output: curve (this CRNet has output: {self.output})")


def _activation(name: str) -> nn.Module:
    return {
        "none": nn.Identity(),
        "relu": nn.ReLU(),
        "lrelu": nn.LeakyReLU(0.2),
        "elu": nn.ELU(),
    }[name]


class MaskedConv(nn.Module):
    """``MC(x) = act(conv_f(x)) * sigmoid(conv_m(x))``, gated convolution, C -> C.

    The feature and mask convolutions are two 3x3 convs; they are stored as one conv with 2C
    outputs (same parameters and arithmetic, one kernel launch).
    """

    def __init__(self, channels: int, activation: str, padding_mode: str = "zeros") -> None:
        super().__init__()
        self.conv = conv3x3(channels, 2 * channels, padding_mode)
        self.act = _activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feature, mask = self.conv(x).chunk(2, dim=1)
        return self.act(feature) * torch.sigmoid(mask)


class MaskedResidualBlock(nn.Module):
    """``MRB(x) = x + MC2(MC1(x))``."""

    def __init__(self, channels: int, activation: str, padding_mode: str = "zeros") -> None:
        super().__init__()
        self.mc1 = MaskedConv(channels, activation, padding_mode)
        self.mc2 = MaskedConv(channels, activation, padding_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mc2(self.mc1(x))


def layer_attention(features: torch.Tensor, gamma: torch.Tensor, sign: float = 1.0) -> torch.Tensor:
    """Layer attention of HAN over N feature maps, with the energy averaged, not summed.

    Args:
        features: ``(B, N, C, H, W)``.
        gamma: scalar weight of the attended maps (0 at initialisation: identity).
        sign: +1 softmaxes ``E``, -1 softmaxes ``-E``.

    Returns:
        ``(B, N, C, H, W)``: ``F'_i = gamma * sum_j A_ij F_j + F_i``, ``A = softmax(sign * E)``,
        ``E = F F^T / (C H W)``. Dividing by ``C H W`` keeps the attention equally sharp on a
        96-pixel training patch and a 12-megapixel photo.
    """
    b, n = features.shape[:2]
    flat = features.reshape(b, n, -1)
    # scale before the product: the raw sum over C*H*W overflows fp16 (max 65504) on large tiles
    scaled = flat.float() * flat.shape[-1] ** -0.5  # scaled in float32 too: small bf16/fp16 values keep their digits
    energy = long_inner_product(scaled, scaled.transpose(1, 2))  # float32: see long_inner_product
    attention = torch.softmax(sign * energy, dim=-1).to(flat.dtype)
    attended = torch.bmm(attention, flat).reshape(features.shape)
    return gamma * attended + features


class LayerAttention(nn.Module):
    """LAM: attention across N layer outputs, then a 1x1 conv N*C -> C fuses them."""

    def __init__(self, layers: int, channels: int, sign: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))
        self.fuse = nn.Conv2d(layers * channels, channels, 1)
        self.sign = sign

    def forward(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        stacked = torch.stack(outputs, dim=1)
        attended = layer_attention(stacked, self.gamma, self.sign)
        return self.fuse(attended.flatten(1, 2))


class LayerAttentionGroup(nn.Module):
    """LMRG: masked residual blocks run recurrently with a convolutional memory and layer attention.

    ``h = MC_head(x)``, ``m = h``; R times: ``z = conv1x1(cat(h, m))``, the MRBs run in sequence on
    ``z`` (weights shared across recurrences), ``m = LAM(their outputs)``. Output ``x + MC_tail(m)``.
    """

    def __init__(self, cfg: CRNetConfig) -> None:
        super().__init__()
        c = cfg.channels
        pad = cfg.padding_mode
        self.head = MaskedConv(c, cfg.activation, pad)
        self.memory = nn.Conv2d(2 * c, c, 1)
        self.blocks = nn.ModuleList(MaskedResidualBlock(c, cfg.activation, pad) for _ in range(cfg.blocks))
        sign = 1.0 if cfg.attention_sign == "positive" else -1.0
        self.attention = LayerAttention(cfg.blocks, c, sign)
        self.tail = MaskedConv(c, cfg.activation, pad)
        self.recurrences = cfg.recurrences

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        m = h
        for _ in range(self.recurrences):
            z = self.memory(torch.cat((h, m), dim=1))
            outputs = []
            for block in self.blocks:
                z = block(z)
                outputs.append(z)
            m = self.attention(outputs)
        return x + self.tail(m)


class GlobalContext(nn.Module):
    """Image-level statistics to per-group FiLM parameters and a per-channel output gain (**ours**).

    The embedding is per pixel (a 1x1 conv and ReLU on the pixel-unshuffled stem input), so its
    mean over a whole photo is the pixel-weighted mean of its means over any partition of the photo:
    tiled inference computes it exactly, band by band, and hands it to every tile.
    """

    def __init__(self, in_channels: int, cfg: CRNetConfig) -> None:
        super().__init__()
        d, c = cfg.context_channels, cfg.channels
        self.groups, self.channels = cfg.groups, c
        self.embed = nn.Conv2d(in_channels, d, 1)
        self.hidden = nn.Linear(d, d)
        self.out = nn.Linear(d, cfg.groups * 2 * c + 3)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)


    def pixel_embedding(self, stem_in: torch.Tensor) -> torch.Tensor:
        """``(B, D, h, w)``: the per-pixel embedding whose spatial mean is the context."""
        return F.relu(self.embed(stem_in))

    def modulation(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """From the context ``(B, D)``: FiLM scale and shift ``(B, G, C, 1, 1)`` and a per-channel
        log-gain ``(B, 3, 1, 1)`` (residual output: the stage is multiplied by its exp; curve
        output: it is added to the gain logits)."""
        params = self.out(F.relu(self.hidden(context)))
        film, gain = params[:, :-3], params[:, -3:]
        film = film.reshape(-1, self.groups, 2, self.channels, 1, 1)
        return 1.0 + film[:, :, 0], film[:, :, 1], gain[:, :, None, None]


class CurveRefinement(nn.Module):
    """A denoiser at 1/2 resolution on a curve output, gated where the curve brightened (**ours**).

    ``z = out(relu(hidden_L(... relu(inp(cat(unshuffle2(y), pool2(b)))))))``, ``y' = y + b *
    shuffle2(z)``, with ``y`` the curve output and ``b = 1 - 1/g`` its brightening (the gain ``g``
    per pixel and channel; ``b`` also tells the stage how much the noise was amplified). The last
    convolution is zero-initialised, so a checkpoint without the stage warm-starts one with it and
    computes the same image; the gate keeps a well-exposed photo (``g ~ 1``) as it is. The result
    is capped at ``max(y, 254/255)``: the stage removes noise, it never clips a highlight the
    curve kept (the curve's own guard against clipping stays in force).
    Pixel-unshuffle by 2 is lossless: the stage sees every pixel, at a quarter of the positions.
    """

    def __init__(self, channels: int, layers: int, padding_mode: str) -> None:
        super().__init__()
        pad = padding_mode
        self.inp = conv3x3(15, channels, pad)
        self.hidden = nn.ModuleList(
            conv3x3(channels, channels, pad) for _ in range(layers)
        )
        self.out = conv3x3(channels, 12, pad)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, y: torch.Tensor, brightening: torch.Tensor) -> torch.Tensor:
        """``y`` ``(B, 3, H, W)``, ``brightening`` ``(B, 3, H, W)`` in ``[0, 1)``, ``H, W`` even."""
        fast = (not needs_graph(y, brightening, self.out.weight) and y.dtype == brightening.dtype
                and y.is_contiguous())
        if fast:  # inference: the same tensor, written straight into channels-last memory
            h = self._input_in_place(y, brightening)
        else:
            h = torch.cat((F.pixel_unshuffle(y, 2), area_mean(brightening, 2)), dim=1)
            # channels-last: oneDNN runs these narrow convolutions faster that way on CPU (the whole
            # command's A/B: README "Speed", benchmarks/enhance_command.py)
            h = h.contiguous(memory_format=torch.channels_last)
        h = F.relu(self.inp(h), inplace=True)
        for conv in self.hidden:
            h = F.relu(conv(h), inplace=True)
        out = self.out(h)
        if fast and out.is_contiguous(memory_format=torch.channels_last):
            # pixel_shuffle by 2 of channels-last memory is one permuted copy; then in place
            # (a bf16 detail under autocast is promoted by the copy, as the out-of-place form does)
            b, _, half_h, half_w = out.shape
            refined = torch.empty_like(y)
            refined.view(b, 3, half_h, 2, half_w, 2).copy_(
                out.permute(0, 2, 3, 1).reshape(b, half_h, half_w, 3, 2, 2).permute(0, 3, 1, 4, 2, 5)
            )
            refined.mul_(brightening).add_(y)
            return torch.minimum(refined, y.clamp(min=REFINE_CEILING), out=refined)
        refined = y + brightening * F.pixel_shuffle(out.contiguous(), 2)
        # no new clipping: the stage may not lift a pixel above 254/255 unless the curve put it there
        return torch.minimum(refined, y.clamp(min=REFINE_CEILING))

    @staticmethod
    def _input_in_place(y: torch.Tensor, brightening: torch.Tensor) -> torch.Tensor:
        """``cat(pixel_unshuffle(y, 2), avg_pool2d(brightening, 2))`` in channels-last memory, built
        with one rearranging copy of ``y`` instead of an unshuffle, a concatenation and a
        conversion (three passes over a full-resolution tensor)."""
        b, c, height, width = y.shape
        memory = y.new_empty(b, height // 2, width // 2, 5 * c)  # NHWC: c*4 unshuffled + c pooled
        unshuffled = memory[..., : 4 * c].view(b, height // 2, width // 2, c, 2, 2)
        rows = y.view(b, c, height // 2, 2, width // 2, 2)
        # one copy per channel and row parity: each moves pixel pairs along whole rows, where one
        # six-dimensional copy walked two elements at a time (42 against 13 ms for a 2048-px tile
        # on a Zen 3, session 35: benchmarks/inference_ops.py)
        for channel in range(c):
            for dy in range(2):
                unshuffled[:, :, :, channel, dy].copy_(rows[:, channel, :, dy])
        memory[..., 4 * c :].copy_(area_mean(brightening, 2).permute(0, 2, 3, 1))
        return memory.permute(0, 3, 1, 2)  # (B, 5c, H/2, W/2), channels-last strides


def gain_curve(y: torch.Tensor, gain: torch.Tensor, shoulder: float = 1.0) -> torch.Tensor:
    """The exposure tone curve ``g y / (1 + (g^p - 1) y^p)^(1/p)``, ``p`` the shoulder.

    Args:
        y: ``(B, C, H, W)`` in ``[0, 1]``.
        gain: ``g >= 1``, broadcastable to ``y``.
        shoulder: ``p >= 1``; 1 gives ``g y / (1 + (g - 1) y)``.

    Returns:
        Like ``y``, in ``[0, 1]``: ``g y`` near black (slope ``g`` at 0), 1 at 1, ``>= y``,
        monotone in ``y``. At ``p = 1`` it is Reinhard's operator ``L / (1 + L)`` of the gained
        value, normalised so that white stays white; a larger ``p`` keeps the slope ``g`` further
        up and bends later.
    """
    return curve_from_inverse_gain(y, 1.0 / gain, shoulder)


def curve_from_inverse_gain(y: torch.Tensor, inverse_gain: torch.Tensor, shoulder: float = 1.0) -> torch.Tensor:
    """:func:`gain_curve` through ``r = 1 / g``: ``y / (r^p + (1 - r^p) y^p)^(1/p)``."""
    if shoulder == 1:
        return y / (inverse_gain + (1.0 - inverse_gain) * y)
    if shoulder == 2:
        r2 = inverse_gain * inverse_gain
        return y * torch.rsqrt(r2 + (1.0 - r2) * (y * y))
    rp = inverse_gain.pow(shoulder)
    return y / (rp + (1.0 - rp) * y.pow(shoulder)).pow(1.0 / shoulder)


class CRNet(EnhancementModel):
    """CRNet: stem, G layer-attention groups, a stage head after each group.

    Shapes: input ``(B, 3, H, W)`` in ``[0, 1]`` with ``H, W`` multiples of ``downscale``; every
    stage image has the input's shape. ``forward`` returns the last stage (clamped to ``[0, 1]`` in
    eval mode); ``forward_train`` returns it unclamped plus the earlier stages.
    """

    # zero-initialised: a checkpoint without global context (or refinement) warm-starts one with it
    warm_start_additions = ("context.", "refine.")

    def __init__(self, info: ModelInfo, **kwargs: object) -> None:
        super().__init__()
        cfg = CRNetConfig(**kwargs)  # type: ignore[arg-type]
        self._registered_info = info
        self._configure(cfg)
        self.built_curve_scale = cfg.curve_scale  # the checkpoint's; set_curve_scale leaves it
        s, c = cfg.downscale, cfg.channels
        pad = cfg.padding_mode
        self.stem = conv3x3(6 * s * s, c, pad)
        self.body = nn.ModuleList(LayerAttentionGroup(cfg) for _ in range(cfg.groups))
        # curve output: 3 s^2 correction channels (pixel-shuffled) + 3 gain logits
        head_out = 3 * s * s + (3 if cfg.output == "curve" else 0)
        self.heads = nn.ModuleList(conv3x3(c, head_out, pad) for _ in range(cfg.groups))
        self.context = GlobalContext(6 * s * s, cfg) if cfg.global_context else None
        self.refine = (
            CurveRefinement(cfg.refine_channels, cfg.refine_layers, pad) if cfg.refine_channels else None
        )
        if cfg.chroma_noise:  # fixed, not learned: not in checkpoints
            self.register_buffer("noise_taps", cell_noise_taps(s), persistent=False)

    def _configure(self, cfg: CRNetConfig) -> None:
        self.cfg = cfg
        # subclasses (SKF) add keys of their own to the config: keep them
        self.config = {**getattr(self, "config", {}), **asdict(cfg)}
        multiple = self._registered_info.input_multiple * cfg.curve_scale
        self.info = dataclasses.replace(self._registered_info, input_multiple=multiple)

    @property
    def supports_curve_scale(self) -> bool:
        """True for curve outputs, whose maps :meth:`set_curve_scale` can estimate at lower resolution."""
        return self.cfg.output == "curve"

    @classmethod
    def curve_capable(cls, kwargs: dict) -> bool:
        """A CRNet built with ``kwargs`` has a curve output (see :attr:`supports_curve_scale`)."""
        return kwargs.get("output", CRNetConfig.output) == "curve"

    @property
    def curve_scale(self) -> int:
        """The body runs on a ``1/curve_scale`` copy of the input (see :class:`CRNetConfig`)."""
        return self.cfg.curve_scale

    def set_curve_scale(self, curve_scale: int) -> CRNet:
        """Run the body on an area-downscaled copy of the input from now on (weights unchanged).

        Updates ``config`` (saved checkpoints and exports rebuild the same way) and ``info``
        (inputs must be multiples of ``downscale * curve_scale``). Returns self.

        Raises:
            ConfigError: not an integer from 1 to 64, or this CRNet has no curve output.
        """
        self._configure(dataclasses.replace(self.cfg, curve_scale=curve_scale))
        return self

    @property
    def uses_image_context(self) -> bool:
        """True when the output depends on whole-image statistics (see :meth:`image_context`)."""
        return self.context is not None

    @torch.no_grad()
    def image_context(self, image: torch.Tensor, band: int = 256, weights: torch.Tensor | None = None) -> torch.Tensor:
        """The whole-image context ``(B, D)`` of ``image`` ``(B, 3, H, W)``, computed in row bands
        (``D`` is ``context_channels``, one more with ``chroma_noise``: the photo's noise response).

        Pass it as ``forward(tile, context=...)`` so every tile of a photo sees the statistics of
        the whole photo. ``H`` and ``W`` must be multiples of ``downscale``; ``band`` bounds the
        rows processed at once (rounded to a multiple of ``downscale``). ``weights`` ``(B, 1, H,
        W)`` in ``[0, 1]``: how much each pixel counts (0 for the fully transparent pixels of a
        photo with alpha, whose hidden colour must not move the visible ones); an image with no
        weight at all gets the plain mean.
        """
        if self.context is None:
            raise ValueError("this CRNet has no global context (global_context=False)")
        s = self.cfg.downscale
        band = max(s, band - band % s)
        weight = self.stem.weight
        total, counted = None, None
        for top in range(0, image.shape[-2], band):
            rows = image[..., top : top + band, :].to(weight.device, weight.dtype)
            part = self._context_features(self._stem_input(rows))
            if weights is None:
                sums = part.sum(dim=(-2, -1), dtype=torch.float32)
                count = torch.full_like(sums[:, :1], part.shape[-2] * part.shape[-1])
            else:  # each embedding position stands for s x s pixels: their mean weight
                cell = F.avg_pool2d(weights[..., top : top + band, :].to(weight.device, torch.float32), s)
                sums = (part.float() * cell).sum(dim=(-2, -1))
                count = cell.sum(dim=(-2, -1))
            total = sums if total is None else total + sums
            counted = count if counted is None else counted + count
        assert total is not None and counted is not None
        if weights is not None and bool((counted <= 0).any()):
            return self.image_context(image, band)
        return total / counted

    def _context_features(self, stem_in: torch.Tensor) -> torch.Tensor:
        """``(B, D, h, w)``, or ``(B, D + 1, h, w)`` with ``chroma_noise``: the per-cell quantities
        whose means over the photo are its context: the global context's embedding and the cells'
        noise response (:func:`~lowlight_cli.models.noise.cell_noise_response`)."""
        assert self.context is not None
        embedding = self.context.pixel_embedding(stem_in)
        if not self.cfg.chroma_noise:
            return embedding
        cell = self.cfg.downscale
        response = cell_noise_response(stem_in[:, : 3 * cell * cell], self.noise_taps)
        return torch.cat((embedding, response.to(embedding.dtype)), dim=1)

    def _stem_input(self, x: torch.Tensor) -> torch.Tensor:
        """``pixel_unshuffle(cat(x, view))``, computed as ``cat(u, view(u))`` with ``u`` the
        unshuffled ``x``: the same tensor (the view is per element), with one full-resolution
        rearrangement of 3 channels instead of a concatenation and a rearrangement of 6. Outside
        autograd and graph capture both halves are written straight into the result (the gamma
        view as ``exp(log(x) / 2.2)``, within 1e-7 of the power)."""
        s = self.cfg.downscale
        if needs_graph(x):  # the differentiable, exportable form
            if s > 1:
                x = F.pixel_unshuffle(x, s)
            view = x.clamp(min=1e-6).pow(1.0 / 2.2) if self.cfg.stem_input == "gamma" else x
            return torch.cat((x, view), dim=1)
        # the same tensor written in place: no separate rearrangement and concatenation passes
        b, c, height, width = x.shape
        out = x.new_empty(b, 2 * c * s * s, height // s, width // s)
        unshuffled = out[:, : c * s * s]
        unshuffled.view(b, c, s, s, height // s, width // s).copy_(
            x.view(b, c, height // s, s, width // s, s).permute(0, 1, 3, 5, 2, 4)
        )
        if self.cfg.stem_input == "gamma":
            # x ** (1/2.2) as exp(log(x) / 2.2), in place: within 1e-7 of pow, which is 1.6 to
            # 2.6 times slower on CPU (benchmarks/inference_ops.py)
            view = out[:, c * s * s :]
            torch.log(unshuffled.clamp(min=1e-6), out=view).mul_(1.0 / 2.2).exp_()
        else:
            out[:, c * s * s :].copy_(unshuffled)
        return out

    def _stages(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None,
        *,
        all_stages: bool,
        after_group: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
        curve_scale: int | None = None,
    ) -> list[torch.Tensor]:
        """Stage images of ``x``; ``after_group(k, h)``, when given, rewrites group ``k``'s output
        features ``h`` ``(B, C, H/s, W/s)`` before its stage head reads them and the next group
        continues from them (the decoder side, where plug-ins such as SKF's semantic embedding sit).
        ``curve_scale`` overrides the configured one for this call (training at several scales)."""
        scale = self.cfg.curve_scale if curve_scale is None else curve_scale
        stem_in = self._stem_input(x if scale == 1 else area_mean(x, scale))
        h = self.stem(stem_in)
        film, noise_level = None, None
        if self.context is not None:
            if context is None:  # from the full-resolution input, as image_context computes it
                full = stem_in if scale == 1 else self._stem_input(x)
                context = self._context_features(full).mean(dim=(-2, -1))
            width = self.cfg.context_channels
            film = self.context.modulation(context[:, :width].to(h.dtype))
            if self.cfg.chroma_noise:
                noise_level = context[:, width : width + 1]
        stages = []
        last = len(self.body) - 1
        for k, (group, head) in enumerate(zip(self.body, self.heads)):
            if film is not None:
                h = h * film[0][:, k] + film[1][:, k]
            h = group(h)
            if after_group is not None:
                h = after_group(k, h)
            if all_stages or k == last:  # inference skips the intermediate heads
                gain = None if film is None else film[2]
                if self.cfg.output == "curve":
                    curve, brightening = self._curve_stage(x, head(h), gain, scale)
                    if k == last and self.refine is not None:
                        curve = self.refine(curve, brightening)
                    if k == last and self.cfg.chroma_radius:
                        # the green channel's brightening (green weighs most in luma), full from gain 2 up
                        gate = (brightening[:, 1:2] / CHROMA_FULL_BRIGHTENING).clamp(max=1.0)
                        noise = None
                        if noise_level is not None:  # eps grows with the noise the curve left in each pixel
                            noise = AmplifiedNoise(brightening[:, 1:2], IMMERKAER_SCALE * noise_level, self.cfg.chroma_noise)
                        curve = smooth_chroma(curve, gate, self.cfg.chroma_radius, self.cfg.chroma_eps, REFINE_CEILING, scale,
                                              luma=self.cfg.chroma_luma, noise=noise)
                    stages.append(curve)
                    continue
                residual = head(h)
                if self.cfg.downscale > 1:
                    residual = F.pixel_shuffle(residual, self.cfg.downscale)
                stage = x + residual
                stages.append(stage if gain is None else stage * torch.exp(gain))
        return stages

    def _curve_stage(
        self, x: torch.Tensor, raw: torch.Tensor, gain: torch.Tensor | None, curve_scale: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A curve-output stage (see :class:`CRNetConfig`): ``x`` ``(B,3,H,W)`` in ``[0,1]``, ``raw``
        the head's ``(B, 3 s^2 + 3, H/(s c), W/(s c))`` (``c`` the curve scale); returns the stage ``(B,3,H,W)`` in ``[0,1]`` and
        its brightening ``1 - 1/g`` ``(B,3,H,W)``.

        Element-wise work is done at body resolution where it commutes with the upsampling (the
        bound ``tanh`` before ``pixel_shuffle``; the context's per-channel gain before the bilinear
        upsampling, whose weights sum to 1), and the curve is evaluated through ``r = 1 / g``
        (``g y / (1 + (g - 1) y) = y / (r + (1 - r) y)``), which the gate needs anyway: fewer
        passes over the full-resolution image.
        """
        s = self.cfg.downscale
        correction = _CORRECTION_BOUND * torch.tanh(raw[:, : 3 * s * s])
        logits = raw[:, 3 * s * s :]
        if gain is not None:
            logits = logits + gain
        if s > 1:
            correction = F.pixel_shuffle(correction, s)
        if curve_scale is None:
            curve_scale = self.cfg.curve_scale
        if curve_scale > 1:  # body on a downscaled copy: maps upsampled to the input's size
            correction = F.interpolate(correction, size=x.shape[-2:], mode="bilinear", align_corners=False)
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        elif s > 1:
            logits = F.interpolate(logits, scale_factor=float(s), mode="bilinear", align_corners=False)
        if not needs_graph(x, raw):
            return self._curve_in_place(x, correction, logits)
        # -log(g) = -log(max_gain) * sigmoid(logits) [* (1 - peak^k)]
        neg_log_gain = torch.sigmoid(logits) * -math.log(self.cfg.max_gain)
        if self.cfg.highlight_exponent > 0:
            peak = x.amax(dim=1, keepdim=True).clamp(0.0, 1.0)
            neg_log_gain = neg_log_gain * (1.0 - peak.pow(self.cfg.highlight_exponent))
        inverse_gain = torch.exp(neg_log_gain)  # r = 1 / g in [1 / max_gain, 1]
        brightening = 1.0 - inverse_gain
        if self.cfg.gate_correction:  # only where the curve brightens: a well-exposed photo passes
            correction = correction * brightening
        y = (x + correction).clamp(0.0, 1.0)
        if self.cfg.curve_shoulder != 1:
            return curve_from_inverse_gain(y, inverse_gain, self.cfg.curve_shoulder), brightening
        return y / (inverse_gain + brightening * y), brightening

    def _curve_in_place(
        self, x: torch.Tensor, correction: torch.Tensor, logits: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The full-resolution end of :meth:`_curve_stage` for inference: the same operations,
        written into two fresh tensors instead of a new one per operation (the differentiable,
        exportable form allocates about ten full-resolution tensors). ``correction`` is a tensor
        of the stage's own (it is overwritten); ``logits`` may be a view of the head's output.
        Half-precision maps (autocast) are promoted to the input's dtype first, as the
        out-of-place operations with the input promote them."""
        correction = correction.to(x.dtype)
        # -log(g) for now
        inverse_gain = torch.sigmoid(logits).to(x.dtype).mul_(-math.log(self.cfg.max_gain))
        k = self.cfg.highlight_exponent
        if k > 0:
            peak = x.amax(dim=1, keepdim=True).clamp_(0.0, 1.0)
            if k == 4:  # the default: two squarings instead of a general power
                peak.mul_(peak).mul_(peak)
            else:
                peak.pow_(k)
            inverse_gain.mul_(peak.neg_().add_(1.0))
        inverse_gain.exp_()  # r = 1 / g
        brightening = torch.rsub(inverse_gain, 1.0)
        if self.cfg.gate_correction:
            correction.mul_(brightening)
        y = correction.add_(x).clamp_(0.0, 1.0)
        p = self.cfg.curve_shoulder
        if p == 2:  # y / sqrt(r^2 + (1 - r^2) y^2): one new tensor, three passes more than p = 1
            squared = torch.mul(y, y)
            denominator = inverse_gain.square_()  # r is not needed after this
            denominator.addcmul_(squared, denominator, value=-1.0).add_(squared)  # r^2 - y^2 r^2 + y^2
            return y.mul_(denominator.rsqrt_()), brightening
        if p != 1:
            return curve_from_inverse_gain(y, inverse_gain, p), brightening
        return y.div_(torch.mul(brightening, y).add_(inverse_gain)), brightening

    def forward_train(
        self, x: torch.Tensor, context: torch.Tensor | None = None, *, curve_scale: int | None = None
    ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Return ``{"output": y_G, "stages": [y_1, ..., y_{G-1}]}``, all ``(B,3,H,W)``, unclamped.

        ``curve_scale`` (curve outputs): run this call's body at that scale instead of the
        configured one (``model.curve_scales`` of a training config); ``H, W`` must be multiples
        of ``downscale * curve_scale``.
        """
        if curve_scale is not None:
            check_curve_scale(curve_scale, "curve_scale")
            if curve_scale > 1 and self.cfg.output != "curve":
                raise ConfigError(f"curve_scale applies to output: curve (this CRNet has output: {self.cfg.output})")
        stages = self._stages(x, context, all_stages=True, curve_scale=curve_scale)
        return {"output": stages[-1], "stages": stages[:-1]}

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Enhance ``x`` ``(B,3,H,W)`` in ``[0,1]``; clamped to ``[0,1]`` in eval mode.

        ``context`` (models with ``global_context`` only): the :meth:`image_context` of the whole
        photo ``x`` is a tile of; by default the context of ``x`` itself.
        """
        y = self._stages(x, context, all_stages=False)[-1]
        return y if self.training else y.clamp(0.0, 1.0)
