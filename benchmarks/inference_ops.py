"""The operations the curve models' inference path chose between, timed on this machine.

    python benchmarks/inference_ops.py              # this CPU's own ISA
    python benchmarks/inference_ops.py --isa avx2   # re-runs itself limited to AVX2

For one 2048x2048 tile of the default photo model (`crnet-curve-dn`, 2 threads, best of 5):
the stem's gamma view as ``pow(x, 1/2.2)`` against in-place ``exp(log(x)/2.2)``; the output check's
per-channel extremes as ``aminmax`` against ``amin`` + ``amax``; and replicate-padded 3x3
convolutions as ``nn.Conv2d`` pads them (a padded copy) against
``lowlight_cli.models.replicate_conv`` (zero padding + the frame from four strips) at the sizes
the model runs them: the stem (384 -> 32 at 256x256), the denoiser (16 -> 16 at 1024x1024,
channels-last) and a body convolution (32 -> 64 at 256x256, below the size where the strips are used);
and the whole denoiser stage as the general path runs it (unshuffle, concatenation, conversion to
channels-last; contiguous copy and pixel shuffle after) against its inference path (input and
shuffle in one copy each, session 19), best of 20, the two alternated; the copy that builds the
denoiser's input (one copy of a six-dimensional view against one per channel and row parity,
session 35); and the denoiser stage's
share of a whole tile's network time at the setting `lowlight enhance` uses for a 12 MP photo.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from lowlight_cli.models import create_model  # noqa: E402
from lowlight_cli.models.replicate_conv import replicate_conv3x3  # noqa: E402


def best(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--isa", choices=("native", "avx2"), default="native")
    args = parser.parse_args()
    if args.isa == "avx2" and os.environ.get("ATEN_CPU_CAPABILITY") != "avx2":
        env = dict(os.environ, ONEDNN_MAX_CPU_ISA="AVX2", ATEN_CPU_CAPABILITY="avx2")
        raise SystemExit(subprocess.call([sys.executable, __file__, "--isa", "avx2"], env=env))
    torch.manual_seed(0)
    print(f"# {describe_machine()}; ISA: {args.isa}; ms, best of 5")
    print("| operation | before | after |")
    print("|---|---|---|")
    with torch.inference_mode():
        stem = torch.rand(1, 192, 256, 256)
        out = torch.empty_like(stem)
        before = best(lambda: torch.pow(stem.clamp(min=1e-6), 1 / 2.2, out=out))
        after = best(lambda: torch.log(stem.clamp(min=1e-6), out=out).mul_(1 / 2.2).exp_())
        print(f"| gamma view of a tile's stem input (192 x 256 x 256): pow / in-place exp(log) | {before:.1f} | {after:.1f} |")
        tile = torch.rand(1, 3, 2048 * 2048)
        before = best(lambda: torch.aminmax(tile, dim=2))
        after = best(lambda: (tile.amin(dim=2), tile.amax(dim=2)))
        print(f"| per-channel extremes of an output tile (3 x 2048 x 2048): aminmax / amin + amax | {before:.1f} | {after:.1f} |")
        for name, c_in, c_out, side, channels_last in (("stem", 384, 32, 256, False), ("denoiser", 16, 16, 1024, True),
                                                         ("body", 32, 64, 256, False)):
            x = torch.rand(1, c_in, side, side)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            w, b = torch.randn(c_out, c_in, 3, 3) * 0.1, torch.randn(c_out)
            before = best(lambda: F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), w, b))
            after = best(lambda: replicate_conv3x3(x, w, b))
            print(f"| replicate-padded 3x3 conv, {name} ({c_in} -> {c_out} at {side}x{side}): padded copy / strips "
                  f"| {before:.1f} | {after:.1f} |")
        # the denoiser's input: a tile unshuffled by 2 into channels-last memory, as one copy of a
        # six-dimensional view against one copy per channel and row parity (session 35)
        y = torch.rand(1, 3, 2048, 2048)
        memory = torch.empty(1, 1024, 1024, 15)
        unshuffled, rows = memory[..., :12].view(1, 1024, 1024, 3, 2, 2), y.view(1, 3, 1024, 2, 1024, 2)

        def per_row_parity() -> None:
            for channel in range(3):
                for dy in range(2):
                    unshuffled[:, :, :, channel, dy].copy_(rows[:, channel, :, dy])

        before = best(lambda: unshuffled.copy_(rows.permute(0, 2, 4, 1, 3, 5)))
        expected = memory.clone()
        memory.zero_()
        after = best(per_row_parity)
        assert torch.equal(memory, expected)
        print(f"| denoiser input: a 2048x2048 tile unshuffled into channels-last memory: one 6-d copy / a copy per "
              f"channel and row parity | {before:.1f} | {after:.1f} |")
        stage = create_model("crnet-curve-dn", pretrained=False).refine.eval()
        y, bright = torch.rand(1, 3, 2048, 2048), torch.rand(1, 3, 2048, 2048) * 0.5
        general_y = y.contiguous(memory_format=torch.channels_last)  # a channels-last y takes the general path
        assert torch.equal(stage(y, bright), stage(general_y, bright).contiguous())
        before, after = float("inf"), float("inf")
        for _ in range(4):
            before = min(before, best(lambda: stage(general_y, bright), 5))
            after = min(after, best(lambda: stage(y, bright), 5))
        print(f"| denoiser stage on a 2048x2048 tile (best of 20, alternated): general path / inference path "
              f"| {before:.1f} | {after:.1f} |")
        # where a tile's network time goes: the whole model as `lowlight enhance` runs it on a 12 MP
        # photo (one recurrence as bundled, curves at 1/2 resolution: --curve-scale auto) and its denoiser
        model = create_model("crnet-curve-dn", pretrained=False, recurrences=1).eval().set_curve_scale(2)
        x = torch.rand(1, 3, 2048, 2048)
        whole, denoiser = float("inf"), float("inf")
        for _ in range(4):
            whole = min(whole, best(lambda: model(x), 5))
            denoiser = min(denoiser, best(lambda: model.refine(y, bright), 5))
        print(f"\nA 2048x2048 tile of crnet-curve-dn (one recurrence, --curve-scale 2, best of 20, alternated): "
              f"the whole model {whole:.0f} ms, its denoiser stage {denoiser:.0f} ms ({denoiser / whole:.0%}).")


if __name__ == "__main__":
    main()
