"""Semi-LLIE's Mamba backbone (the authors' ``MambaLowlight``); registers its sizes at import.

The network (SPEC-systems.md, from the authors' release): an illumination estimator maps
``cat(x, mean_c(x))`` to a 3-channel illumination map; a 3x3 stem reads ``cat(x, illumination)``;
residual state-space groups of blocks follow (each group's blocks, a 3x3 conv, plus the group's
input), each block ``x*s1 + SS2D(LN(x))`` then ``x*s2 + CAB(LN(x))``, with a LayerNorm before the
first group and after the last; a 3x3 convolution closes the body (plus the stem's output) and a
3x3 tail gives the residual added to the image. Inputs are centred on the authors' RGB mean first.

SS2D (VMamba's 2-D selective scan with the authors' multi-scale convolutions): a linear map to
``2E`` channels split into ``x`` and the gate ``z``; ``x`` through a depthwise 3x3 and, in
sequence, a depthwise 5x5, each through SiLU, concatenated and fused by a 1x1 to ``E`` channels;
a selective scan along four orders of the pixels (row-major, column-major, both reversed; each
direction its own step, ``B``, ``C``, ``A`` and ``D``), summed; LayerNorm, times ``SiLU(z)``, linear
back to the width. The scan is global: every output pixel depends on the whole image, so the
model is not tile-exact.

``downscale`` (ours, for CPUs) runs everything after the input behind pixel-unshuffle: the
estimator and the body see ``1/downscale^2`` of the pixels and the tail's residual is
pixel-shuffled back to full resolution. ``downscale=1`` is the authors' network.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import EnhancementModel, ModelInfo
from .registry import register_model
from .selective_scan import cross_merge, cross_scan, selective_scan

PAPER = (
    "Li, Zhang, Wang, Li, Zhao, Li, Semi-LLIE: Semi-supervised Contrastive Learning with Mamba-based "
    "Low-light Image Enhancement, arXiv 2409.16604, 2024 (backbone after MambaIR and VMamba's SS2D)"
)
RGB_MEAN = (0.4488, 0.4371, 0.4040)  # the authors' input centring (DIV2K's mean colour)
DIRECTIONS = 4  # SS2D's scan orders


@dataclass(frozen=True)
class SemiLLIEConfig:
    """Architecture hyper-parameters; the defaults are the authors' network.

    Attributes:
        width: feature channels of the body (and of the illumination estimator); a multiple of 4.
        depths: state-space blocks in each residual group.
        d_state: state size ``N`` of the selective scan.
        expand: SS2D's inner width is ``expand * width``.
        dt_rank: rank of the step-size projection; 0 = ``ceil(width / 16)`` (Mamba's ``auto``).
        downscale: run the network behind pixel-unshuffle by this factor (1 = the authors').
        drop_path: stochastic-depth rate of the last block's SS2D branch (linear from 0 over the
            blocks, training only), as the authors train.
        cab_compress: channel reduction of the channel-attention block's convolutions.
        cab_squeeze: channel reduction of its squeeze-excitation.
    """

    width: int = 64
    depths: tuple[int, ...] = (2, 2)
    d_state: int = 16
    expand: int = 2
    dt_rank: int = 0
    downscale: int = 1
    drop_path: float = 0.1
    cab_compress: int = 3
    cab_squeeze: int = 30

    def __post_init__(self) -> None:
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))  # JSON gives lists
        positive = ("width", "d_state", "expand", "downscale", "cab_compress", "cab_squeeze")
        if any(getattr(self, name) < 1 for name in positive) or self.dt_rank < 0:
            raise ConfigError(f"semi-llie {', '.join(positive)} must be >= 1 and dt_rank >= 0, got {self}")
        if self.width % 4:
            raise ConfigError(f"semi-llie width must be a multiple of 4 (grouped 5x5 of the estimator), got {self.width}")
        if not self.depths or min(self.depths) < 1:
            raise ConfigError(f"semi-llie depths must be one or more block counts >= 1, got {self.depths}")
        if not 0.0 <= self.drop_path < 1.0:
            raise ConfigError(f"semi-llie drop_path must be in [0, 1), got {self.drop_path}")

    @property
    def inner(self) -> int:
        """SS2D's inner width ``E``."""
        return self.expand * self.width

    @property
    def rank(self) -> int:
        """Rank of the step-size projection."""
        return self.dt_rank or math.ceil(self.width / 16)


class IlluminationEstimator(nn.Module):
    """``(B, 4 s^2, h, w)`` = unshuffled ``cat(x, mean_c(x))`` -> illumination map ``(B, 3 s^2, h, w)``.

    1x1 conv to ``width`` channels, a 5x5 convolution in 4 groups, 1x1 conv to the map (no
    activations, as the authors wrote it). Unbounded; the stem reads it as a feature.
    """

    def __init__(self, in_channels: int, width: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 1)
        self.depth_conv = nn.Conv2d(width, width, 5, padding=2, groups=4)
        self.conv2 = nn.Conv2d(width, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.depth_conv(self.conv1(x)))


class ChannelAttentionBlock(nn.Module):
    """CAB (RCAN's channel attention after two 3x3 convs): ``(B, C, h, w)`` -> same shape."""

    def __init__(self, width: int, compress: int, squeeze: int) -> None:
        super().__init__()
        mid, squeezed = max(1, width // compress), max(1, width // squeeze)
        self.body = nn.Sequential(nn.Conv2d(width, mid, 3, padding=1), nn.GELU(), nn.Conv2d(mid, width, 3, padding=1))
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(width, squeezed, 1), nn.ReLU(), nn.Conv2d(squeezed, width, 1), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return y * self.attention(y)


class SS2D(nn.Module):
    """The 2-D selective-scan mixer: ``(B, h, w, C)`` channels-last -> same shape.

    Parameters per direction ``k`` (four): ``x_proj_weight[k]`` maps the ``E`` features of a pixel
    to its step rank, ``B`` and ``C``; ``dt_proj_weight[k]``, ``dt_proj_bias[k]`` lift the rank to
    ``E`` step sizes; ``A_log`` (``A = -exp(A_log)``) and ``D`` hold the ``4E`` channels' decay
    rates and skips. Initialised as Mamba: ``A = -(1..N)``, ``D = 1``, steps log-uniform in
    ``[0.001, 0.1]`` after the softplus.
    """

    def __init__(self, cfg: SemiLLIEConfig) -> None:
        super().__init__()
        width, inner, state, rank = cfg.width, cfg.inner, cfg.d_state, cfg.rank
        self.inner, self.state, self.rank = inner, state, rank
        self.in_proj = nn.Linear(width, 2 * inner, bias=False)
        self.dwconv3 = nn.Conv2d(inner, inner, 3, padding=1, groups=inner)
        self.dwconv5 = nn.Conv2d(inner, inner, 5, padding=2, groups=inner)
        self.fuse = nn.Conv2d(2 * inner, inner, 1)
        bound = inner**-0.5  # nn.Linear's default initialisation, as the authors' x_proj
        self.x_proj_weight = nn.Parameter(torch.empty(DIRECTIONS, rank + 2 * state, inner).uniform_(-bound, bound))
        self.dt_proj_weight = nn.Parameter(torch.empty(DIRECTIONS, inner, rank).uniform_(-(rank**-0.5), rank**-0.5))
        steps = torch.exp(torch.rand(DIRECTIONS, inner) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
        steps = steps.clamp(min=1e-4)
        self.dt_proj_bias = nn.Parameter(steps + torch.log(-torch.expm1(-steps)))  # softplus^-1
        self.A_log = nn.Parameter(torch.log(torch.arange(1, state + 1, dtype=torch.float32)).repeat(DIRECTIONS * inner, 1))
        self.D = nn.Parameter(torch.ones(DIRECTIONS * inner))
        self.out_norm = nn.LayerNorm(inner)
        self.out_proj = nn.Linear(inner, width, bias=False)

    def scan(self, x: torch.Tensor) -> torch.Tensor:
        """Four-direction selective scan of ``(B, E, h, w)`` features, merged: ``(B, E, h, w)``, float32."""
        height, width = x.shape[-2:]
        xs = cross_scan(x)  # (B, 4, E, L)
        ranks, B, C = torch.einsum("bkel,kce->bkcl", xs, self.x_proj_weight).split([self.rank, self.state, self.state], dim=2)
        # the step sizes are passed without a name here, so the scan can free them once converted
        y = selective_scan(
            xs.flatten(1, 2),
            torch.einsum("bkrl,ker->bkel", ranks, self.dt_proj_weight).flatten(1, 2),
            -torch.exp(self.A_log),
            B,
            C,
            self.D,
            self.dt_proj_bias.flatten(),
        )
        return cross_merge(y.unflatten(1, (DIRECTIONS, self.inner)), height, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, z = self.in_proj(x).chunk(2, dim=-1)
        x3 = self.dwconv3(x.permute(0, 3, 1, 2))
        x5 = self.dwconv5(x3)
        x = self.fuse(torch.cat((F.silu(x3), F.silu(x5)), dim=1))
        y = self.out_norm(self.scan(x).to(x.dtype).permute(0, 2, 3, 1))
        return self.out_proj(y * F.silu(z))


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero a whole sample's branch with probability ``rate`` (training only)
    and scale the kept ones by ``1 / (1 - rate)``. ``x``: ``(B, ...)``."""
    if not training or rate == 0.0:
        return x
    keep = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device) >= rate
    return x * keep / (1.0 - rate)


class StateSpaceBlock(nn.Module):
    """``x = x*s1 + SS2D(LN(x))``, then ``x = x*s2 + CAB(LN(x))``; ``(B, h, w, C)`` -> same shape."""

    def __init__(self, cfg: SemiLLIEConfig, drop_rate: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.width)
        self.ss2d = SS2D(cfg)
        self.scale1 = nn.Parameter(torch.ones(cfg.width))
        self.norm2 = nn.LayerNorm(cfg.width)
        self.cab = ChannelAttentionBlock(cfg.width, cfg.cab_compress, cfg.cab_squeeze)
        self.scale2 = nn.Parameter(torch.ones(cfg.width))
        self.drop_rate = drop_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.scale1 + drop_path(self.ss2d(self.norm1(x)), self.drop_rate, self.training)
        cab = self.cab(self.norm2(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x * self.scale2 + cab


class ResidualGroup(nn.Module):
    """Blocks, then a 3x3 conv, plus the group's input: ``(B, h, w, C)`` -> same shape."""

    def __init__(self, cfg: SemiLLIEConfig, drop_rates: list[float]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(StateSpaceBlock(cfg, rate) for rate in drop_rates)
        self.conv = nn.Conv2d(cfg.width, cfg.width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for block in self.blocks:
            y = block(y)
        return self.conv(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1) + x


class SemiLLIENet(EnhancementModel):
    """Semi-LLIE's backbone (see the module docstring); ``info`` and kwargs of :class:`SemiLLIEConfig`.

    Shapes: ``(B, 3, H, W)`` in ``[0, 1]`` with ``H, W`` multiples of ``downscale`` -> same shape;
    ``forward`` clamps to ``[0, 1]`` in eval mode, ``forward_train`` returns the unclamped output.
    The scan runs in float32 under autocast.
    """

    def __init__(self, info: ModelInfo, **kwargs: object) -> None:
        super().__init__()
        cfg = SemiLLIEConfig(**kwargs)  # type: ignore[arg-type]
        self.cfg, self.config, self.info = cfg, asdict(cfg), info
        s2 = cfg.downscale**2
        self.estimator = IlluminationEstimator(4 * s2, cfg.width, 3 * s2)
        self.stem = nn.Conv2d(6 * s2, cfg.width, 3, padding=1)
        self.embed_norm = nn.LayerNorm(cfg.width)
        rates = torch.linspace(0, cfg.drop_path, sum(cfg.depths)).tolist()
        firsts = [sum(cfg.depths[:i]) for i in range(len(cfg.depths))]
        self.groups = nn.ModuleList(ResidualGroup(cfg, rates[f : f + d]) for f, d in zip(firsts, cfg.depths))
        self.body_norm = nn.LayerNorm(cfg.width)
        self.conv_after_body = nn.Conv2d(cfg.width, cfg.width, 3, padding=1)
        self.tail = nn.Conv2d(cfg.width, 3 * s2, 3, padding=1)
        self.register_buffer("rgb_mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        for module in self.modules():  # the authors' initialisation of linear layers
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)

    def _unshuffle(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(x, self.cfg.downscale) if self.cfg.downscale > 1 else x

    def illumination(self, centred: torch.Tensor) -> torch.Tensor:
        """Illumination map ``(B, 3 s^2, H/s, W/s)`` of the centred image ``(B, 3, H, W)``."""
        return self.estimator(self._unshuffle(torch.cat((centred, centred.mean(dim=1, keepdim=True)), dim=1)))

    def forward_train(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """``{"output": (B, 3, H, W) unclamped, "stages": []}``."""
        centred = x - self.rgb_mean.to(x.dtype)
        features = self.stem(torch.cat((self._unshuffle(centred), self.illumination(centred)), dim=1))
        tokens = self.embed_norm(features.permute(0, 2, 3, 1))
        for group in self.groups:
            tokens = group(tokens)
        body = self.body_norm(tokens).permute(0, 3, 1, 2)
        residual = self.tail(self.conv_after_body(body) + features)
        if self.cfg.downscale > 1:
            residual = F.pixel_shuffle(residual, self.cfg.downscale)
        return {"output": x + residual, "stages": []}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Enhance ``x`` ``(B, 3, H, W)`` in ``[0, 1]``; clamped to ``[0, 1]`` in eval mode."""
        y = self.forward_train(x)["output"]
        return y if self.training else y.clamp(0.0, 1.0)


def register() -> None:
    """Register ``semi-llie`` (the authors' network), ``semi-llie-s`` (CPU) and ``semi-llie-tiny`` (tests).

    ``semi-llie-s`` runs the bundled ``semi-llie-s-lol-sup10`` by default (the better of the two
    trained here, see its card); the paper-size ``semi-llie`` has no trained weights, and
    ``create_model("semi-llie")`` without ``--weights`` says so.
    """
    common = dict(family="semi-llie", tile_exact=False, receptive_radius=0, paper=PAPER)
    register_model(
        ModelInfo(
            name="semi-llie",
            listed_macs=2_323_645_440,
            description="Semi-LLIE's Mamba backbone as released (610,530 parameters), full resolution, "
            "global 4-direction selective scan; GPU model; no trained weights yet",
            input_multiple=1,
            default_tile=256,  # the authors' training crop: the scan sees the context it learned
            memory_per_pixel=22528,  # measured: peak RSS 20-22 kB per pixel at 128-256 px, fp32
            **common,
        ),
        SemiLLIENet,
    )
    register_model(
        ModelInfo(
            name="semi-llie-s",
            listed_macs=112_198_656,
            description="Semi-LLIE backbone (ours, for CPUs): behind 4x pixel-unshuffle, SS2D inner width 64, "
            "d_state 8",
            input_multiple=4,
            default_tile=1024,  # the body then sees 256x256, as the full model in its 256 tiles
            memory_per_pixel=1024,  # measured: ~0.8 kB per pixel at 512-1024 px
            bundled_weights="semi-llie-s-lol-sup10",
            **common,
        ),
        SemiLLIENet,
        downscale=4,
        expand=1,
        d_state=8,
    )
    register_model(
        ModelInfo(
            name="semi-llie-tiny",
            listed_macs=60_948_512,
            description="Semi-LLIE backbone test size (width 16, one block, d_state 4)",
            input_multiple=1,
            default_tile=256,
            memory_per_pixel=6144,
            tags=("test",),
            **common,
        ),
        SemiLLIENet,
        width=16,
        depths=(1,),
        d_state=4,
        drop_path=0.0,
    )


register()
