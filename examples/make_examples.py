"""Make the bundled low-light examples from scikit-image's sample photos.

    python examples/make_examples.py

Each photo is resized to 600x400 (LOL's size) and darkened through the camera-like model of
``lowlight_cli.data.synthetic`` (exposure, Poisson shot noise, Gaussian read noise), with a fixed
seed, so the files are reproducible. Writes ``examples/<name>.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from lowlight_cli.data.synthetic import DarkeningModel, darken, sample_photo
from lowlight_cli.io import ImageData, from_float, write_image

EXAMPLES = {  # name: exposure (fraction of the light of the original)
    "coffee": 0.02,
    "chelsea": 0.025,
    "rocket": 0.015,
}
SIZE = (600, 400)  # width, height


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="folder to write the examples in (default: examples/, beside this script)")
    here = parser.parse_args(argv).out
    here.mkdir(parents=True, exist_ok=True)
    for index, (name, exposure) in enumerate(EXAMPLES.items()):
        photo = cv2.resize(sample_photo(name), SIZE, interpolation=cv2.INTER_AREA)
        dark = darken(photo.astype(np.float32) / 255.0, DarkeningModel(exposure=exposure), np.random.default_rng(index))
        write_image(here / f"{name}.png", ImageData(rgb=from_float(dark, 8)))
        print(f"wrote {here / f'{name}.png'} (mean level {dark.mean():.3f})")


if __name__ == "__main__":
    main()
