"""A small PatchGAN discriminator (Isola et al., pix2pix, CVPR 2017) for SKF's adversarial loss.

It scores every overlapping patch of an image for realness instead of the whole image, so a
region's score is the mean over the patches inside it (:mod:`lowlight_cli.losses.adversarial`)
and one pass serves the global term and every region. Scores are unbounded (least-squares GAN:
real -> 1, fake -> 0; no sigmoid).

Layout for ``downsamplings = 3``: 4x4 stride-2 convs 3 -> w -> 2w -> 4w (each halving the size),
a 3x3 conv 4w -> 4w and a 3x3 conv 4w -> 1; LeakyReLU(0.2) after every conv but the last,
instance norm after all but the first and the last (CycleGAN's choice; batch statistics would
tie the real and fake batches together). Receptive field: 54 pixels; 0.31 M parameters at the
default width 32.

This is not an enhancement model and is not registered as one: an SKF training step owns it and
its optimiser.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PatchDiscriminator(nn.Module):
    """Patch realness scores of RGB images.

    Args:
        width: channels of the first conv (doubling per downsampling, at most ``8 * width``).
        downsamplings: stride-2 convs; the score map is ``1 / 2^downsamplings`` of the image.
        in_channels: channels of the judged images (3: the discriminator sees exactly the images
            the generator is judged on, nothing concatenated).

    Example:
        >>> d = PatchDiscriminator(width=8)
        >>> tuple(d(torch.rand(2, 3, 64, 48)).shape)
        (2, 1, 8, 6)
    """

    def __init__(self, width: int = 32, downsamplings: int = 3, in_channels: int = 3) -> None:
        super().__init__()
        if width < 1 or downsamplings < 1 or in_channels < 1:
            raise ValueError(f"need width, downsamplings and in_channels >= 1, got {width}, {downsamplings}, {in_channels}")
        self.width, self.downsamplings, self.in_channels = width, downsamplings, in_channels
        layers: list[nn.Module] = []
        cin, cout = in_channels, width
        for level in range(downsamplings):
            layers.append(nn.Conv2d(cin, cout, 4, stride=2, padding=1))
            if level > 0:
                layers.append(nn.InstanceNorm2d(cout, affine=True))
            layers.append(nn.LeakyReLU(0.2))
            cin, cout = cout, min(2 * cout, 8 * width)
        layers += [nn.Conv2d(cin, cin, 3, padding=1), nn.InstanceNorm2d(cin, affine=True), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(cin, 1, 3, padding=1))
        self.body = nn.Sequential(*layers)

    @property
    def input_multiple(self) -> int:
        """Height and width should be multiples of this for score cells to align with image blocks."""
        return 2**self.downsamplings

    def forward(self, images: Tensor) -> Tensor:
        """Score patches.

        Args:
            images: ``(B, in_channels, H, W)`` RGB in ``[0, 1]`` (mapped to ``[-1, 1]`` inside);
                ``H, W >= 2 ** (downsamplings + 1)`` so that instance norm sees several cells.

        Returns:
            ``(B, 1, floor(H / 2^d), floor(W / 2^d))`` unbounded scores (LSGAN: ~1 real, ~0 fake).

        Raises:
            ValueError: wrong channel count or images too small.
        """
        if images.ndim != 4 or images.shape[1] != self.in_channels:
            raise ValueError(f"the discriminator takes (B, {self.in_channels}, H, W) images, got {tuple(images.shape)}")
        smallest = 2 ** (self.downsamplings + 1)
        if min(images.shape[2:]) < smallest:
            raise ValueError(
                f"images must be at least {smallest}x{smallest} for {self.downsamplings} downsamplings, got {tuple(images.shape[2:])}"
            )
        return self.body(images * 2.0 - 1.0)

    def extra_repr(self) -> str:
        return f"width={self.width}, downsamplings={self.downsamplings}, in_channels={self.in_channels}"
