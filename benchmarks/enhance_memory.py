"""Peak memory of enhancing large images, whole vs tiled: tiling bounds the model's working memory.

    python benchmarks/enhance_memory.py                 # crnet-s, 6 / 12 / 24 MP, CPU
    python benchmarks/enhance_memory.py --model gamma --megapixels 24

Each measurement runs in a fresh process. It reports the peak resident memory (ru_maxrss) and the
"working" memory: the peak minus the resident memory once the model and the image buffers (input
float32 and output float32) exist. Image buffers grow with the image by design (the photo has to
be in memory); the working memory of tiled runs must not.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import rss_mb  # noqa: E402




def measure(model_name: str, megapixels: float, tile: int) -> dict:
    """Run in this process: enhance a ``megapixels`` image with ``tile``; return memory figures (MB)."""
    import numpy as np
    import torch

    from lowlight_cli.inference import Enhancer, InferenceConfig
    from lowlight_cli.models import create_model

    torch.set_grad_enabled(False)
    width = int(round((megapixels * 1e6 * 4 / 3) ** 0.5 / 4)) * 4
    height = int(round(megapixels * 1e6 / width / 4)) * 4
    enhancer = Enhancer(create_model(model_name, pretrained=False), InferenceConfig(device="cpu", tile=tile, overlap=32, batch_size=4))
    image = np.full((height, width, 3), 0.1, np.float32)
    output_buffer = np.empty_like(image)  # stands for the output array so the baseline counts it
    output_buffer.fill(0)
    baseline = rss_mb()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del output_buffer
    enhancer.enhance(image)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "model": model_name,
        "image": f"{width}x{height}",
        "megapixels": round(width * height / 1e6, 1),
        "tile": tile,
        "peak_mb": round(max(peak, peak_before)),
        "buffers_mb": round(baseline),
        "working_mb": round(max(peak, peak_before) - baseline),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="crnet-s")
    parser.add_argument("--megapixels", type=float, nargs="*", default=[6, 12, 24])
    parser.add_argument("--tiles", type=int, nargs="*", default=[512, 0])
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, mp, tile = args.child
        print(json.dumps(measure(name, float(mp), int(tile))))
        return
    from machine import describe_machine

    print(f"machine: {describe_machine()}")
    print("| model | image | tile | peak RSS (MB) | model + image buffers (MB) | working memory (MB) |")
    print("|---|---|---|---|---|---|")
    for tile in args.tiles:
        for mp in args.megapixels:
            proc = subprocess.run(
                [sys.executable, __file__, "--child", args.model, str(mp), str(tile)],
                capture_output=True, text=True, check=True,
            )
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            tile_text = "whole" if r["tile"] == 0 else str(r["tile"])
            print(f"| {r['model']} | {r['image']} ({r['megapixels']} MP) | {tile_text} | {r['peak_mb']} | {r['buffers_mb']} | {r['working_mb']} |", flush=True)


if __name__ == "__main__":
    main()
