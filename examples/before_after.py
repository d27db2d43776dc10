"""Compose the README's before/after strip from examples/ and an enhanced folder.

    lowlight enhance examples/ -o enhanced/ --model gamma
    python examples/before_after.py enhanced/ docs/before_after.jpg

Each row: the low-light example, then its enhanced version; written as a JPEG at half size.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from lowlight_cli.io import ImageData, find_images, read_image, write_image


def main() -> None:
    enhanced_dir, target = Path(sys.argv[1]), Path(sys.argv[2])
    here = Path(__file__).resolve().parent
    rows = []
    for item in find_images([here]):
        after = enhanced_dir / item.path.name
        if after.exists():
            rows.append(np.hstack([read_image(item.path).rgb, read_image(after).rgb]))
    if not rows:
        sys.exit(f"no enhanced versions of {here}/*.png in {enhanced_dir}")
    strip = np.vstack(rows)
    strip = cv2.resize(strip, (strip.shape[1] // 2, strip.shape[0] // 2), interpolation=cv2.INTER_AREA)
    write_image(target, ImageData(rgb=np.ascontiguousarray(strip)), quality=85)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
