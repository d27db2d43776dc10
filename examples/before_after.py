"""Compose the README's before/after strips from examples/ and one or more enhanced folders.

    lowlight enhance examples/ -o enhanced/
    python examples/before_after.py enhanced/ docs/before_after.jpg
    lowlight enhance examples/ -o enhanced-model/ --colour model
    python examples/before_after.py enhanced-model/ enhanced/ docs/colour.jpg

Each row: the low-light example, then its enhanced versions in the order given; written as a JPEG
at half size.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from lowlight_cli.io import ImageData, find_images, read_image, write_image


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("enhanced", type=Path, nargs="+", help="enhanced folders, one column each")
    parser.add_argument("target", type=Path, help="the strip to write (a .jpg)")
    args = parser.parse_args(argv)
    enhanced_dirs, target = args.enhanced, args.target
    here = Path(__file__).resolve().parent
    rows = []
    for item in find_images([here]):
        afters = [folder / item.path.name for folder in enhanced_dirs]
        if all(after.exists() for after in afters):
            rows.append(np.hstack([read_image(item.path).rgb] + [read_image(after).rgb for after in afters]))
    if not rows:
        sys.exit(f"no enhanced versions of {here}/*.png in {', '.join(map(str, enhanced_dirs))}")
    strip = np.vstack(rows)
    strip = cv2.resize(strip, (strip.shape[1] // 2, strip.shape[0] // 2), interpolation=cv2.INTER_AREA)
    write_image(target, ImageData(rgb=np.ascontiguousarray(strip)), quality=85)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
