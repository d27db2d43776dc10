"""Image files in and out: reading, writing and finding images without losing bit depth, alpha or metadata.

Reading gives :class:`ImageData` (upright, at the file's bit depth, EXIF and ICC profile kept);
writing keeps what the target format can hold and returns notes on what it could not. The library
never prints: problems are typed errors from :mod:`lowlight_cli.errors`, losses are returned notes.
"""

from __future__ import annotations

from lowlight_cli.io.discovery import Discovery, InputFile, SkippedFile, find_images, output_path, scan_inputs
from lowlight_cli.io.formats import SUPPORTED_EXTENSIONS, can_hold, format_for_path
from lowlight_cli.io.image import ImageData, from_float, replace_rgb, to_float
from lowlight_cli.io.read import DEFAULT_MAX_PIXELS, read_image, read_size
from lowlight_cli.io.write import write_image

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "SUPPORTED_EXTENSIONS",
    "Discovery",
    "ImageData",
    "InputFile",
    "SkippedFile",
    "can_hold",
    "find_images",
    "format_for_path",
    "from_float",
    "output_path",
    "read_image",
    "read_size",
    "replace_rgb",
    "scan_inputs",
    "to_float",
    "write_image",
]
