"""Tests of lowlight_cli.io: reading, writing, metadata, orientation, errors, atomic writes, discovery.

Every image is made here: numpy patterns, or scikit-image's astronaut scaled down. Files that test
the reader are written with Pillow, an encoder independent of the OpenCV one the package uses.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image, ImageCms, ImageOps

from lowlight_cli.errors import ImageReadError, ImageTooLargeError, ImageWriteError, OutputExistsError, UsageError
from lowlight_cli.io import (
    DEFAULT_MAX_PIXELS,
    SUPPORTED_EXTENSIONS,
    ImageData,
    InputFile,
    can_hold,
    find_images,
    format_for_path,
    from_float,
    output_path,
    read_image,
    replace_rgb,
    to_float,
    write_image,
)
from lowlight_cli.io import encode as encode_module
from lowlight_cli.io import write as write_module
from lowlight_cli.io.containers import png_chunks

MAKE, MODEL, DATETIME, ORIENTATION, EXIF_IFD, DATETIME_ORIGINAL = 271, 272, 306, 274, 0x8769, 0x9003
GPS_IFD, GPS_LATITUDE_REF, GPS_LATITUDE, INTEROP_IFD, INTEROP_INDEX = 0x8825, 1, 2, 0xA005, 1
T = Image.Transpose
# Pillow operation that stores an upright picture so that a viewer applying the tag shows it upright.
STORE_AS = {
    1: None,
    2: T.FLIP_LEFT_RIGHT,
    3: T.ROTATE_180,
    4: T.FLIP_TOP_BOTTOM,
    5: T.TRANSPOSE,
    6: T.ROTATE_90,
    7: T.TRANSVERSE,
    8: T.ROTATE_270,
}
FORMAT_EXT = {"png": ".png", "jpeg": ".jpg", "tiff": ".tif", "webp": ".webp", "bmp": ".bmp"}


# ---------------------------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=None)
def _astronaut(height: int, width: int) -> np.ndarray:
    from skimage import data

    return cv2.resize(data.astronaut(), (width, height), interpolation=cv2.INTER_AREA)


def photo(height: int = 40, width: int = 56) -> np.ndarray:
    """``(H, W, 3)`` uint8 natural photo: asymmetric, so every orientation is distinguishable."""
    return _astronaut(height, width).copy()


def random_pixels(shape: tuple[int, ...], dtype: type, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


@functools.lru_cache(maxsize=1)
def srgb_profile() -> bytes:
    """One sRGB profile for the whole run: LittleCMS stamps each new profile with the current time
    (header bytes 24-35), so two made a second apart differ and a comparison would fail by chance."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exif_tags(orientation: int | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif[MAKE] = "Nightcam"
    exif[MODEL] = "NC-1 Mark II"
    exif[DATETIME] = "2024:02:29 23:59:58"
    exif.get_ifd(EXIF_IFD)[DATETIME_ORIGINAL] = "2024:02:29 23:59:57"
    exif.get_ifd(EXIF_IFD)[INTEROP_IFD] = {INTEROP_INDEX: "R98"}  # a directory inside a directory
    exif.get_ifd(GPS_IFD).update({GPS_LATITUDE_REF: "N", GPS_LATITUDE: (48.0, 51.0, 29.0)})
    if orientation is not None:
        exif[ORIENTATION] = orientation
    return exif


def raw_exif(orientation: int | None = None) -> bytes:
    """EXIF as ImageData holds it: from the TIFF header on, no ``Exif\\0\\0`` prefix."""
    return exif_tags(orientation).tobytes()[len(b"Exif\x00\x00") :]


def parse_exif(data: bytes) -> Image.Exif:
    exif = Image.Exif()
    exif.load(data)
    return exif


def assert_camera_tags(exif: Image.Exif) -> None:
    assert exif[MAKE] == "Nightcam"
    assert exif[MODEL] == "NC-1 Mark II"
    assert exif[DATETIME] == "2024:02:29 23:59:58"
    assert exif.get_ifd(EXIF_IFD)[DATETIME_ORIGINAL] == "2024:02:29 23:59:57"
    assert exif.get_ifd(INTEROP_IFD) == {INTEROP_INDEX: "R98"}
    assert exif.get_ifd(GPS_IFD) == {GPS_LATITUDE_REF: "N", GPS_LATITUDE: (48.0, 51.0, 29.0)}


def save_with_pillow(path: Path, array: np.ndarray, mode: str | None = None, **options: object) -> Path:
    image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    image.save(path, **options)
    return path


def stored_as(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels a camera stores for ``upright`` when it tags the file with ``orientation``."""
    op = STORE_AS[orientation]
    return upright if op is None else np.asarray(Image.fromarray(upright).transpose(op))


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# ------------------------------------------------------------------------------ conversions, ImageData


def test_to_float_scales_by_the_dtype_maximum() -> None:
    assert to_float(np.array([[[0, 128, 255]]], np.uint8)).tolist() == [[[0.0, np.float32(128 / 255), 1.0]]]
    out = to_float(np.array([[[0, 300, 65535]]], np.uint16))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[[0.0, 300 / 65535, 1.0]]], rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(
    hnp.arrays(np.uint16, hnp.array_shapes(min_dims=3, max_dims=3, max_side=6)),
    st.sampled_from([8, 16]),
)
def test_from_float_inverts_to_float_exactly(pixels: np.ndarray, bit_depth: int) -> None:
    pixels = pixels if bit_depth == 16 else (pixels >> 8).astype(np.uint8)
    np.testing.assert_array_equal(from_float(to_float(pixels), bit_depth), pixels)


def test_from_float_clips_rounds_and_zeroes_nan() -> None:
    values = np.array([-0.5, 0.0, 0.4 / 255, 0.6 / 255, 1.0, 7.0, np.nan, np.inf, -np.inf], np.float32)
    assert from_float(values, 8).tolist() == [0, 0, 0, 1, 255, 255, 0, 255, 0]
    assert from_float(values.astype(np.float64), 16).tolist() == [0, 0, 103, 154, 65535, 65535, 0, 65535, 0]
    assert np.isnan(values[6])  # the caller's array is left as it was
    assert int(from_float(np.float32(0.5), 8)) == 128 and int(from_float(np.array(np.nan), 8)) == 0  # 0-d too
    assert from_float(values, 16).dtype == np.uint16
    with pytest.raises(ValueError, match="bit_depth"):
        from_float(values, 12)


def test_bit_depth_comes_from_dtype_not_from_values(tmp_path: Path) -> None:
    dark = random_pixels((12, 10, 3), np.uint16) % 301  # a very dark 16-bit photo: max value 300
    image = ImageData(dark)
    assert image.bit_depth == 16 and (image.height, image.width) == (12, 10)
    write_image(tmp_path / "dark.png", image)
    back = read_image(tmp_path / "dark.png")
    assert back.bit_depth == 16 and back.rgb.dtype == np.uint16
    np.testing.assert_array_equal(back.rgb, dark)


def test_image_data_rejects_bad_arrays() -> None:
    with pytest.raises(ValueError, match="shape"):
        ImageData(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="uint8 or uint16"):
        ImageData(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="alpha"):
        ImageData(np.zeros((4, 4, 3), np.uint8), alpha=np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match="dtype"):
        ImageData(np.zeros((4, 4, 3), np.uint8), alpha=np.zeros((4, 4), np.uint16))


def test_replace_rgb_keeps_everything_but_the_pixels() -> None:
    alpha = random_pixels((5, 6), np.uint16, seed=1)
    image = ImageData(random_pixels((5, 6, 3), np.uint16), alpha, False, raw_exif(), srgb_profile(), "tiff")
    new = replace_rgb(image, np.full((5, 6, 3), 0.5, np.float32))
    assert new.rgb.dtype == np.uint16 and np.all(new.rgb == 32768)
    assert new.alpha is alpha and new.exif == image.exif and new.icc_profile == image.icc_profile
    assert (new.gray, new.source_format) == (False, "tiff")
    with pytest.raises(ValueError, match="shape"):
        replace_rgb(image, np.zeros((6, 5, 3), np.float32))


def test_replace_rgb_keeps_a_gray_image_gray() -> None:
    image = ImageData(np.zeros((3, 4, 3), np.uint8), gray=True)
    colour = np.stack([np.full((3, 4), v, np.float32) for v in (0.2, 0.4, 0.6)], axis=2)
    new = replace_rgb(image, colour)
    assert new.gray
    np.testing.assert_array_equal(new.rgb, np.full((3, 4, 3), 102, np.uint8))  # mean 0.4 -> 102


# ------------------------------------------------------------------------- reading independent files


@pytest.mark.parametrize(
    ("fmt", "mode", "options"),
    [
        ("png", "L", {}),
        ("png", "LA", {}),
        ("png", "RGB", {}),
        ("png", "RGBA", {}),
        ("tiff", "L", {}),
        ("tiff", "LA", {}),
        ("tiff", "RGB", {"compression": "tiff_lzw"}),
        ("tiff", "RGBA", {}),
        ("webp", "RGB", {"lossless": True}),
        ("webp", "RGBA", {"lossless": True, "exact": True}),
        ("bmp", "L", {}),
        ("bmp", "RGB", {}),
        ("jpeg", "L", {"quality": 95, "subsampling": 0}),
        ("jpeg", "RGB", {"quality": 95, "subsampling": 0}),
    ],
)
def test_reads_every_format_and_channel_layout(tmp_path: Path, fmt: str, mode: str, options: dict) -> None:
    rgba = np.dstack([photo(), random_pixels((40, 56), np.uint8, seed=3)])
    source = Image.fromarray(rgba).convert(mode)
    path = tmp_path / f"in{FORMAT_EXT[fmt]}"
    source.save(path, **options)
    expected = np.asarray(source.convert("RGBA" if "A" in mode else "RGB"))

    image = read_image(path)

    assert image.source_format == fmt and image.bit_depth == 8
    assert image.gray == mode.startswith("L")
    assert image.rgb.shape == (40, 56, 3) and image.rgb.flags.c_contiguous
    if fmt == "jpeg":
        assert mean_abs_diff(image.rgb, expected[..., :3]) < 3
    else:
        np.testing.assert_array_equal(image.rgb, expected[..., :3])
    if "A" in mode:
        np.testing.assert_array_equal(image.alpha, expected[..., 3])
    else:
        assert image.alpha is None


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_reads_16bit_gray_written_by_pillow(tmp_path: Path, ext: str) -> None:
    gray = random_pixels((9, 7), np.uint16)
    path = tmp_path / f"g16{ext}"
    Image.fromarray(gray).save(path)  # mode I;16
    image = read_image(path)
    assert image.gray and image.bit_depth == 16 and image.alpha is None
    np.testing.assert_array_equal(image.rgb, np.repeat(gray[..., None], 3, axis=2))


def test_reads_rgba_tiff_without_premultiplying(tmp_path: Path) -> None:
    # Pillow marks the alpha as unassociated; OpenCV's TIFF reader would premultiply the colours.
    rgba = random_pixels((8, 9, 4), np.uint8)
    image = read_image(save_with_pillow(tmp_path / "rgba.tif", rgba))
    np.testing.assert_array_equal(image.rgb, rgba[..., :3])
    np.testing.assert_array_equal(image.alpha, rgba[..., 3])


# ------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("ext", [".png", ".tif", ".tiff"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("with_alpha", [False, True])
def test_lossless_round_trip_is_exact(tmp_path: Path, ext: str, dtype: type, with_alpha: bool) -> None:
    rgb = random_pixels((11, 13, 3), dtype)
    alpha = random_pixels((11, 13), dtype, seed=5) if with_alpha else None
    assert write_image(tmp_path / f"x{ext}", ImageData(rgb, alpha)) == []
    back = read_image(tmp_path / f"x{ext}")
    assert back.rgb.dtype == dtype and not back.gray
    np.testing.assert_array_equal(back.rgb, rgb)
    if with_alpha:
        np.testing.assert_array_equal(back.alpha, alpha)
    else:
        assert back.alpha is None


@pytest.mark.parametrize(("ext", "pillow_mode"), [(".png", "L"), (".tif", "L"), (".jpg", "L"), (".bmp", "L")])
def test_gray_stays_single_channel_gray(tmp_path: Path, ext: str, pillow_mode: str) -> None:
    gray = photo()[..., 1]
    image = ImageData(np.repeat(gray[..., None], 3, axis=2), gray=True)
    write_image(tmp_path / f"g{ext}", image)
    with Image.open(tmp_path / f"g{ext}") as written:
        assert written.mode == pillow_mode
    back = read_image(tmp_path / f"g{ext}")
    assert back.gray
    assert np.array_equal(back.rgb[..., 0], back.rgb[..., 1]) and np.array_equal(back.rgb[..., 0], back.rgb[..., 2])
    if ext == ".jpg":
        assert mean_abs_diff(back.rgb, image.rgb) < 3
    else:
        np.testing.assert_array_equal(back.rgb, image.rgb)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_gray_alpha_png_is_written_as_gray_alpha(tmp_path: Path, dtype: type) -> None:
    gray, alpha = random_pixels((7, 9), dtype), random_pixels((7, 9), dtype, seed=9)
    image = ImageData(np.repeat(gray[..., None], 3, axis=2), alpha, gray=True)
    write_image(tmp_path / "ga.png", image)
    colour_type = (tmp_path / "ga.png").read_bytes()[25]
    assert colour_type == 4  # PNG gray+alpha
    back = read_image(tmp_path / "ga.png")
    assert back.gray and back.bit_depth == image.bit_depth
    np.testing.assert_array_equal(back.rgb, image.rgb)
    np.testing.assert_array_equal(back.alpha, alpha)


@pytest.mark.parametrize(("ext", "quality"), [(".tif", 95), (".webp", 100)])
def test_gray_alpha_without_a_two_channel_format_is_kept_as_rgba(tmp_path: Path, ext: str, quality: int) -> None:
    gray, alpha = random_pixels((7, 9), np.uint8), random_pixels((7, 9), np.uint8, seed=9)
    image = ImageData(np.repeat(gray[..., None], 3, axis=2), alpha, gray=True)
    assert write_image(tmp_path / f"ga{ext}", image, quality=quality) == []
    back = read_image(tmp_path / f"ga{ext}")
    np.testing.assert_array_equal(back.rgb, image.rgb)
    np.testing.assert_array_equal(back.alpha, alpha)


def test_rgba_tiff_declares_unassociated_alpha(tmp_path: Path) -> None:
    write_image(tmp_path / "a.tif", ImageData(photo(), random_pixels((40, 56), np.uint8)))
    with Image.open(tmp_path / "a.tif") as written:
        assert written.mode == "RGBA" and written.tag_v2[338] == (2,)  # ExtraSamples: unassociated alpha


@pytest.mark.parametrize("quality", [100, 80])
def test_webp_keeps_alpha_bit_identical(tmp_path: Path, quality: int) -> None:
    rgb, alpha = photo(), random_pixels((40, 56), np.uint8)
    write_image(tmp_path / "a.webp", ImageData(rgb, alpha), quality=quality)
    back = read_image(tmp_path / "a.webp")
    np.testing.assert_array_equal(back.alpha, alpha)
    if quality == 100:  # lossless
        np.testing.assert_array_equal(back.rgb, rgb)
    else:
        assert mean_abs_diff(back.rgb, rgb) < 6


def test_jpeg_round_trip_is_close_and_quality_matters(tmp_path: Path) -> None:
    rgb = photo(64, 80)
    write_image(tmp_path / "hi.jpg", ImageData(rgb), quality=95)
    write_image(tmp_path / "lo.jpg", ImageData(rgb), quality=20)
    assert mean_abs_diff(read_image(tmp_path / "hi.jpg").rgb, rgb) < 3
    assert (tmp_path / "lo.jpg").stat().st_size < (tmp_path / "hi.jpg").stat().st_size


def test_16bit_to_8bit_format_rounds_and_says_so(tmp_path: Path) -> None:
    rgb = random_pixels((6, 5, 3), np.uint16)
    notes = write_image(tmp_path / "x.bmp", ImageData(rgb))
    assert notes == ["BMP holds 8 bits: 16-bit image written as 8-bit"]
    back = read_image(tmp_path / "x.bmp")
    np.testing.assert_array_equal(back.rgb, np.rint(rgb / 257).astype(np.uint8))


# ------------------------------------------------------------------------------------- notes


@pytest.mark.parametrize("fmt", ["png", "jpeg", "tiff", "webp", "bmp"])
@pytest.mark.parametrize("bit_depth", [8, 16])
@pytest.mark.parametrize("with_alpha", [False, True])
def test_notes_are_what_can_hold_predicts_and_what_was_really_lost(
    tmp_path: Path, fmt: str, bit_depth: int, with_alpha: bool
) -> None:
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    alpha = random_pixels((4, 4), dtype) if with_alpha else None
    image = ImageData(random_pixels((4, 4, 3), dtype), alpha, exif=raw_exif(), icc_profile=srgb_profile())
    path = tmp_path / f"x{FORMAT_EXT[fmt]}"
    notes = write_image(path, image)
    assert notes == can_hold(fmt, bit_depth, with_alpha, has_exif=True, has_icc=True)
    back = read_image(path)
    assert (back.bit_depth == bit_depth) == (not any("bits" in note for note in notes))
    assert (back.alpha is not None) == (with_alpha and not any("alpha" in note for note in notes))
    assert (back.exif is not None) == (not any("EXIF" in note for note in notes))
    assert (back.icc_profile is not None) == (not any("profile" in note for note in notes))


def test_can_hold_lists_exactly_what_is_lost() -> None:
    assert can_hold("png", 16, True) == []
    assert can_hold("tiff", 16, True, has_exif=True, has_icc=True) == []
    assert can_hold("jpeg", 16, True) == [
        "JPEG holds 8 bits: 16-bit image written as 8-bit",
        "JPEG has no alpha: alpha dropped",
    ]
    assert can_hold("webp", 8, True) == []
    assert can_hold("bmp", 8, False, has_exif=True, has_icc=True) == [
        "BMP has no EXIF: EXIF dropped",
        "BMP has no ICC profile: colour profile dropped",
    ]
    with pytest.raises(ValueError):
        can_hold("gif", 8, False)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.png", "png"), ("a.JPG", "jpeg"), ("a.jpeg", "jpeg"), ("b/a.TIF", "tiff"), ("a.tiff", "tiff"),
     ("a.webp", "webp"), ("a.bmp", "bmp")],
)
def test_format_for_path(name: str, fmt: str) -> None:
    assert format_for_path(name) == fmt


@pytest.mark.parametrize("name", ["a.gif", "a", "a.png.txt"])
def test_format_for_path_rejects_other_extensions(name: str) -> None:
    with pytest.raises(ImageWriteError, match="unsupported extension") as caught:
        format_for_path(name)
    assert caught.value.path == Path(name) and ".png" in (caught.value.hint or "")


def test_supported_extensions_and_default_limit() -> None:
    assert SUPPORTED_EXTENSIONS == {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"}
    assert DEFAULT_MAX_PIXELS == 250_000_000


# ---------------------------------------------------------------------------------------- metadata


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif", ".webp"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_exif_and_icc_survive_read_write_read(tmp_path: Path, ext: str, dtype: type) -> None:
    camera = tmp_path / "camera.jpg"
    source = save_with_pillow(camera, photo(), quality=95, exif=exif_tags(), icc_profile=srgb_profile())
    image = read_image(source)
    assert image.exif is not None and image.exif[:4] in (b"II*\x00", b"MM\x00*")
    assert image.icc_profile == srgb_profile()
    if dtype == np.uint16:
        image = dataclasses.replace(image, rgb=image.rgb.astype(np.uint16) * 257)
    out = tmp_path / f"out{ext}"
    write_image(out, image)

    with Image.open(out) as written:  # an independent reader sees the metadata
        assert_camera_tags(written.getexif())
        assert written.info.get("icc_profile") == srgb_profile()
    back = read_image(out)
    assert_camera_tags(parse_exif(back.exif))
    assert back.icc_profile == srgb_profile()


def test_tiff_whose_metadata_cannot_be_added_keeps_its_pixels_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unparseable(*args: object, **kwargs: object) -> bytes:
        raise ValueError("only single-image, stripped TIFFs are rewritten")

    monkeypatch.setattr(encode_module, "rewrite_tiff", unparseable)
    rgb = random_pixels((5, 6, 3), np.uint16)
    notes = write_image(tmp_path / "x.tif", ImageData(rgb, exif=raw_exif(), icc_profile=srgb_profile()))
    assert len(notes) == 1 and "EXIF and colour profile dropped" in notes[0]
    np.testing.assert_array_equal(read_image(tmp_path / "x.tif").rgb, rgb)


def test_png_metadata_chunks_are_valid_and_before_the_pixels(tmp_path: Path) -> None:
    write_image(tmp_path / "m.png", ImageData(photo(), exif=raw_exif(), icc_profile=srgb_profile()))
    data = (tmp_path / "m.png").read_bytes()
    kinds = []
    for kind, start, end in png_chunks(data):
        length, payload, crc = struct.unpack_from(">I", data, start)[0], data[start + 8 : end - 4], data[end - 4 : end]
        assert length == len(payload) and struct.unpack(">I", crc)[0] == zlib.crc32(kind + payload)
        kinds.append(kind)
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    assert kinds.index(b"iCCP") < kinds.index(b"IDAT") and kinds.index(b"eXIf") < kinds.index(b"IDAT")
    icc_payload = data[data.index(b"iCCP") + 4 :]
    name, rest = icc_payload.split(b"\x00", 1)
    assert 1 <= len(name) <= 79 and rest[0] == 0  # compression method 0: zlib


def test_png_exif_after_the_pixels_is_still_found(tmp_path: Path) -> None:
    write_image(tmp_path / "m.png", ImageData(photo(), exif=raw_exif()))
    data = (tmp_path / "m.png").read_bytes()
    chunks = {kind: data[start:end] for kind, start, end in png_chunks(data)}
    moved = data[:8] + chunks[b"IHDR"] + chunks[b"IDAT"] + chunks[b"eXIf"] + chunks[b"IEND"]
    (tmp_path / "late.png").write_bytes(moved)
    assert_camera_tags(parse_exif(read_image(tmp_path / "late.png").exif))


def test_large_icc_profile_spans_several_jpeg_segments(tmp_path: Path) -> None:
    base = srgb_profile()
    big = base + bytes(range(256)) * 600  # ~150 KB: three APP2 segments
    write_image(tmp_path / "big.jpg", ImageData(photo(), icc_profile=big))
    assert (tmp_path / "big.jpg").read_bytes().count(b"ICC_PROFILE\x00") == 3
    assert read_image(tmp_path / "big.jpg").icc_profile == big
    with Image.open(tmp_path / "big.jpg") as written:
        assert written.info["icc_profile"] == big


def test_gray_output_drops_an_rgb_profile_with_a_note(tmp_path: Path) -> None:
    gray = np.repeat(photo()[..., :1], 3, axis=2)
    notes = write_image(tmp_path / "g.png", ImageData(gray, gray=True, icc_profile=srgb_profile()))
    assert notes == ["colour profile is for RGB data but the PNG file stores gray: colour profile dropped"]
    assert read_image(tmp_path / "g.png").icc_profile is None


def test_image_without_metadata_reads_none(tmp_path: Path) -> None:
    image = read_image(save_with_pillow(tmp_path / "plain.png", photo()))
    assert image.exif is None and image.icc_profile is None


# ------------------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_exif_orientation_is_applied(tmp_path: Path, orientation: int) -> None:
    upright = photo(48, 64)
    path = tmp_path / f"o{orientation}.jpg"
    save_with_pillow(path, stored_as(upright, orientation), quality=95, subsampling=0, exif=exif_tags(orientation))
    # The stored file really is turned, and Pillow's own transpose puts it upright (checks the table above).
    with Image.open(path) as written:
        assert mean_abs_diff(np.asarray(ImageOps.exif_transpose(written)), upright) < 3

    image = read_image(path)

    assert image.rgb.shape == upright.shape
    assert mean_abs_diff(image.rgb, upright) < 3
    for other in range(2, 9):  # and not close to any turned or mirrored version
        wrong = stored_as(upright, other)
        if wrong.shape == upright.shape:
            assert mean_abs_diff(image.rgb, wrong) > 10
    exif = parse_exif(image.exif)
    assert exif[ORIENTATION] == 1
    assert exif[MAKE] == "Nightcam"


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_pixel_dimensions_follow_a_quarter_turn(tmp_path: Path, orientation: int) -> None:
    """The EXIF sub-directory's PixelXDimension / PixelYDimension describe the stored image; once
    it is turned upright they must describe the upright one (swapped for orientations 5 to 8)."""
    upright = photo(48, 64)  # 64 wide, 48 high upright
    stored = stored_as(upright, orientation)
    tags = exif_tags(orientation)
    tags.get_ifd(EXIF_IFD).update({0xA002: stored.shape[1], 0xA003: stored.shape[0]})
    path = save_with_pillow(tmp_path / f"d{orientation}.jpg", stored, quality=95, exif=tags)
    image = read_image(path)
    sub = parse_exif(image.exif).get_ifd(EXIF_IFD)
    assert (sub[0xA002], sub[0xA003]) == (64, 48) == (image.rgb.shape[1], image.rgb.shape[0])
    assert sub[DATETIME_ORIGINAL] == "2024:02:29 23:59:57"  # everything else as it was


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("ext", [".png", ".tif", ".webp"])
def test_lossless_orientation_turns_pixels_and_alpha_exactly(tmp_path: Path, ext: str, orientation: int) -> None:
    upright = np.dstack([photo(8, 12), random_pixels((8, 12), np.uint8)])
    options = {"lossless": True, "exact": True} if ext == ".webp" else {}
    stored = stored_as(upright, orientation)
    path = save_with_pillow(tmp_path / f"o{ext}", stored, exif=exif_tags(orientation), **options)

    image = read_image(path)

    np.testing.assert_array_equal(image.rgb, upright[..., :3])
    np.testing.assert_array_equal(image.alpha, upright[..., 3])
    assert parse_exif(image.exif).get(ORIENTATION) == 1


def test_16bit_tiff_orientation_is_applied(tmp_path: Path) -> None:
    stored = random_pixels((5, 8, 3), np.uint16)
    write_image(tmp_path / "o6.tif", ImageData(stored, exif=raw_exif(orientation=6)))
    image = read_image(tmp_path / "o6.tif")
    np.testing.assert_array_equal(image.rgb, np.rot90(stored, k=-1))  # 6: shown turned 90 degrees clockwise
    assert parse_exif(image.exif)[ORIENTATION] == 1


def test_written_file_is_upright_with_orientation_1(tmp_path: Path) -> None:
    upright = photo(8, 12)
    stored = stored_as(upright, 6)
    image = read_image(save_with_pillow(tmp_path / "o6.png", stored, exif=exif_tags(6)))
    write_image(tmp_path / "out.png", image)
    with Image.open(tmp_path / "out.png") as out:
        assert out.getexif()[ORIENTATION] == 1
        np.testing.assert_array_equal(np.asarray(ImageOps.exif_transpose(out)), upright)  # no double turn


# ------------------------------------------------------------------------------------------- errors


def test_missing_file_and_folder_raise_read_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="not found") as caught:
        read_image(tmp_path / "nope.png")
    assert caught.value.path == tmp_path / "nope.png" and str(tmp_path / "nope.png") in str(caught.value)
    with pytest.raises(ImageReadError, match="folder"):
        read_image(tmp_path)


def test_empty_file_raises(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty") as caught:
        read_image(tmp_path / "empty.png")
    assert "empty.png" in str(caught.value)


def test_text_file_named_png_raises(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("this is not an image\n" * 20)
    with pytest.raises(ImageReadError, match="not a readable image") as caught:
        read_image(tmp_path / "notes.png")
    assert caught.value.path == tmp_path / "notes.png"


def _raw_tiff(path: Path, pixels: np.ndarray, *, photometric: int, sample_format: int, alpha: bool = False,
              extra_kind: int = 2) -> Path:
    """An uncompressed one-strip little-endian TIFF of ``pixels`` ``(H, W, C)`` written by hand
    (baseline tags; ExtraSamples ``extra_kind`` for the last channel when ``alpha``: 2 unassociated
    alpha, 0 unspecified)."""
    height, width, channels = pixels.shape
    data = np.ascontiguousarray(pixels).astype(pixels.dtype.newbyteorder("<")).tobytes()
    bits = pixels.dtype.itemsize * 8
    tags = [(256, 3, 1, width), (257, 3, 1, height), (258, 3, channels, "bits"), (259, 3, 1, 1), (262, 3, 1, photometric),
            (273, 4, 1, "data"), (277, 3, 1, channels), (278, 3, 1, height), (279, 4, 1, len(data)),
            *([(338, 3, 1, extra_kind)] if alpha else []), (339, 3, channels, "format")]
    ifd_at = 8
    arrays_at = ifd_at + 2 + 12 * len(tags) + 4
    arrays = {"bits": struct.pack(f"<{channels}H", *[bits] * channels),
              "format": struct.pack(f"<{channels}H", *[sample_format] * channels)}
    offsets, blob_tail = {}, b""
    for name, packed in arrays.items():
        if len(packed) > 4:  # values of 4 bytes or fewer sit in the entry itself
            offsets[name] = arrays_at + len(blob_tail)
            blob_tail += packed
    offsets["data"] = arrays_at + len(blob_tail)
    entries = b""
    for tag, kind, count, value in tags:
        if isinstance(value, str) and value not in offsets:
            field = arrays[value].ljust(4, b"\0")
        elif isinstance(value, str):
            field = struct.pack("<I", offsets[value])
        else:
            field = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        entries += struct.pack("<HHI", tag, kind, count) + field
    path.write_bytes(b"II*\0" + struct.pack("<I", ifd_at) + struct.pack("<H", len(tags)) + entries + b"\0\0\0\0"
                     + blob_tail + data)
    return path


def test_float_tiff_is_named_as_such(tmp_path: Path) -> None:
    """An RGB float32 TIFF (sample format 3): Pillow cannot open it; the error names its samples."""
    pixels = np.random.default_rng(0).random((4, 5, 3), dtype=np.float32)
    path = _raw_tiff(tmp_path / "f32.tif", pixels, photometric=2, sample_format=3)
    with pytest.raises(ImageReadError, match="3 32-bit float samples per pixel \\(RGB\\), which is not supported") as caught:
        read_image(path)
    assert "16-bit" in caught.value.hint


def test_16_bit_gray_alpha_tiff_is_named_as_such(tmp_path: Path) -> None:
    """16-bit gray + alpha: neither Pillow nor OpenCV reads it (OpenCV drops the alpha and the
    depth). The error says what the file is and how to save it, not "float or 32-bit"."""
    pixels = np.random.default_rng(0).integers(0, 65536, (4, 5, 2), dtype=np.uint16)
    path = _raw_tiff(tmp_path / "ga16.tif", pixels, photometric=1, sample_format=1, alpha=True)
    with pytest.raises(ImageReadError, match="2 16-bit integer samples per pixel \\(gray \\+ alpha\\)") as caught:
        read_image(path)
    assert "float" not in str(caught.value)
    assert "RGBA TIFF" in caught.value.hint


def test_bigtiff_that_pillow_cannot_open_is_named_too(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")  # installed with scikit-image (the dev extra)
    tifffile.imwrite(tmp_path / "big.tif", np.zeros((4, 5, 3), np.float32), bigtiff=True, photometric="rgb")
    with pytest.raises(ImageReadError, match="3 32-bit float samples per pixel"):
        read_image(tmp_path / "big.tif")


def test_an_unspecified_extra_sample_is_not_called_alpha(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 65536, (4, 5, 2), dtype=np.uint16)
    path = _raw_tiff(tmp_path / "g2.tif", pixels, photometric=1, sample_format=1, alpha=True, extra_kind=0)
    with pytest.raises(ImageReadError, match=r"2 16-bit integer samples per pixel \(gray\)") as caught:
        read_image(path)
    assert "alpha" not in str(caught.value)


def test_tiff_with_unreadable_header_is_called_corrupt(tmp_path: Path) -> None:
    (tmp_path / "bad.tif").write_bytes(b"II*\0" + struct.pack("<I", 4000) + b"\0" * 64)
    with pytest.raises(ImageReadError, match="header cannot be read"):
        read_image(tmp_path / "bad.tif")


def test_unsupported_image_format_raises(tmp_path: Path) -> None:
    path = save_with_pillow(tmp_path / "anim.gif", photo())
    with pytest.raises(ImageReadError, match="GIF images are not supported"):
        read_image(path)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif", ".webp", ".bmp"])
def test_truncated_files_raise_and_print_nothing(tmp_path: Path, ext: str, capfd: pytest.CaptureFixture) -> None:
    whole = tmp_path / f"whole{ext}"
    write_image(whole, ImageData(photo(64, 64)))
    data = whole.read_bytes()
    for cut in ((len(data) // 2, 40) if ext != ".jpg" else (40,)):  # a JPEG cut inside its pixel data decodes (below)
        (tmp_path / f"cut{ext}").write_bytes(data[:cut])
        with pytest.raises(ImageReadError) as caught:
            read_image(tmp_path / f"cut{ext}")
        assert f"cut{ext}" in str(caught.value)
    assert capfd.readouterr() == ("", "")  # the library never prints, nor lets OpenCV print


def test_a_jpeg_cut_short_decodes_what_is_there_with_a_note(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    whole = tmp_path / "whole.jpg"
    write_image(whole, ImageData(photo(128, 128)))
    data = whole.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: int(len(data) * 0.9)])  # an interrupted copy
    image = read_image(tmp_path / "cut.jpg")
    assert image.rgb.shape == (128, 128, 3)
    assert np.abs(image.rgb[:32].astype(int) - read_image(whole).rgb[:32]).max() <= 1  # the top is all there
    assert "ends early (truncated)" in image.damage_note
    notes = write_image(tmp_path / "out.png", image)
    assert any("ends early" in note for note in notes)
    with pytest.raises(ImageReadError, match="damaged: its decoder warned: the file ends early"):
        read_image(tmp_path / "cut.jpg", strict=True)  # training never takes it
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize("orientation", [1, 6])
def test_a_truncated_jpegs_gray_filler_is_found_and_turned_with_the_photo(tmp_path: Path, orientation: int) -> None:
    upright = photo(96, 128)
    whole = tmp_path / "whole.jpg"
    save_with_pillow(whole, stored_as(upright, orientation), quality=95, subsampling=2, exif=exif_tags(orientation))
    data = whole.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: int(len(data) * 0.6)])
    image = read_image(tmp_path / "cut.jpg")
    gray = (image.rgb == 128).all(axis=2)
    assert image.filler is not None and image.filler.shape == upright.shape[:2]
    assert 0.2 < image.filler.mean() < 0.6 and not (image.filler & ~gray).any()  # only the decoder's flat gray
    # ... and all of it: the gray region that holds the last stored pixel, turned upright with the photo
    stored_gray = stored_as(gray, orientation) if orientation == 1 else np.rot90(gray, 1)
    assert stored_gray[-1].all() and not stored_gray[0].any()  # the file's last rows, wherever they are upright
    assert np.array_equal(image.photo_mask, ~image.filler)
    assert any("gray filler" in note for note in image.decoder_warnings)
    assert read_image(whole).filler is None and read_image(whole).photo_mask is None


def _damaged(path: Path, image: np.ndarray, start: float, count: int, value: int | None = None) -> Path:
    """``image`` written to ``path``, then ``count`` bytes from ``start`` (a fraction of the file,
    or of the JPEG's entropy-coded data) overwritten: XORed with 0x55, or set to ``value``."""
    write_image(path, ImageData(image))
    data = bytearray(path.read_bytes())
    first = data.index(b"\xff\xda") if path.suffix == ".jpg" else 0
    at = first + int((len(data) - first) * start)
    for i in range(at, at + count):
        data[i] = data[i] ^ 0x55 if value is None else (value if i % 2 else 0)
    path.write_bytes(bytes(data))
    return path


def test_damaged_png_raises_with_the_decoders_reason_and_prints_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    path = _damaged(tmp_path / "bad.png", photo(128, 128), 0.5, 100)
    with pytest.raises(ImageReadError, match=r"PNG data is corrupt or truncated \(libpng error: "):
        read_image(path)
    assert capfd.readouterr() == ("", "")  # libpng's own line is captured, not printed


def test_damaged_jpeg_decodes_with_its_warning_kept_and_written_as_a_note(
    tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    path = _damaged(tmp_path / "bad.jpg", photo(128, 128), 0.5, 40, value=0xFF)
    image = read_image(path)  # libjpeg decodes what it can and warns
    assert image.rgb.shape == (128, 128, 3)
    assert len(image.decoder_warnings) == 1 and image.decoder_warnings[0].startswith("Corrupt JPEG data")
    notes = write_image(tmp_path / "out.png", image)
    assert any("its decoder warned: Corrupt JPEG data" in note for note in notes)
    assert capfd.readouterr() == ("", "")
    assert read_image(tmp_path / "out.png").decoder_warnings == ()  # a clean file has none


def test_strict_reading_refuses_a_damaged_file_that_training_would_take(tmp_path: Path) -> None:
    from lowlight_cli.data.pairs import PairPaths, load_pairs
    from lowlight_cli.data.unpaired import read_image_folder, scan_image_folder

    damaged = _damaged(tmp_path / "low" / "1.jpg", photo(128, 128), 0.5, 40, value=0xFF)
    write_image(tmp_path / "high" / "1.png", ImageData(photo(128, 128)))
    with pytest.raises(ImageReadError, match="damaged: its decoder warned: Corrupt JPEG data") as caught:
        read_image(damaged, strict=True)
    assert "move it out" in caught.value.hint
    with pytest.raises(ImageReadError, match="1.jpg: damaged"):
        load_pairs([PairPaths("1", damaged, tmp_path / "high" / "1.png")])
    with pytest.raises(ImageReadError, match="damaged"):
        read_image_folder(scan_image_folder(tmp_path / "low", "positives"))
    assert len(load_pairs([PairPaths("1", tmp_path / "high" / "1.png", None)])) == 1  # a clean file reads


def test_a_libpng_warning_about_metadata_is_kept_quiet_and_is_no_damage(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    path = tmp_path / "icc.png"
    write_image(path, ImageData(photo(32, 32)))
    data = path.read_bytes()
    after_header = 8 + 8 + 13 + 4  # signature, IHDR length + type, its 13 bytes, its CRC
    body = b"bad\x00\x00"  # an iCCP chunk too short to hold a profile: libpng warns and goes on
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    path.write_bytes(data[:after_header] + chunk + data[after_header:])
    image = read_image(path, strict=True)  # training takes it
    assert image.decoder_warnings == () and np.array_equal(image.rgb, photo(32, 32))
    assert capfd.readouterr() == ("", "")


def test_decoder_messages_keeps_other_output_on_stderr(capfd: pytest.CaptureFixture) -> None:
    from lowlight_cli.io.quiet import decoder_messages

    with decoder_messages() as lines:
        os.write(2, b"progress 1\nlibpng warning: iCCP: known incorrect sRGB profile\n\x1b[2Kprogress 2")
        os.write(2, b"\r\x1b[2Ksteps 3/10Corrupt JPEG data: premature end of data segment\n")  # a redraw came first
    assert lines == ["libpng warning: iCCP: known incorrect sRGB profile", "Corrupt JPEG data: premature end of data segment"]
    # the rest, in order, unchanged
    assert capfd.readouterr().err == "progress 1\n\x1b[2Kprogress 2\r\x1b[2Ksteps 3/10"
    with pytest.raises(RuntimeError), decoder_messages():  # what others wrote is written back when the block raises
        os.write(2, b"kept\n")
        raise RuntimeError
    assert capfd.readouterr().err == "kept\n"
    with decoder_messages() as outer, decoder_messages() as inner:  # nested in one thread: no deadlock
        os.write(2, b"libpng error: bad adaptive filter value\n")
    assert inner == ["libpng error: bad adaptive filter value"] and outer == []


def test_garbage_pixel_data_raises(tmp_path: Path) -> None:
    write_image(tmp_path / "ok.png", ImageData(photo()))
    data = bytearray((tmp_path / "ok.png").read_bytes())
    start = data.index(b"IDAT") + 4
    data[start : start + 200] = bytes(200)  # zlib stream destroyed, header intact
    (tmp_path / "bad.png").write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match="corrupt"):
        read_image(tmp_path / "bad.png")


@pytest.mark.parametrize("max_pixels", [100, 399])
def test_too_many_pixels_is_refused_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_pixels: int
) -> None:
    path = save_with_pillow(tmp_path / "big.png", photo(20, 20))
    limit = Image.MAX_IMAGE_PIXELS

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded before checking the size")

    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    with pytest.raises(ImageTooLargeError) as caught:
        read_image(path, max_pixels=max_pixels)
    assert caught.value.path == path and f"{max_pixels:,}" in str(caught.value)
    assert isinstance(caught.value, ImageReadError)
    assert Image.MAX_IMAGE_PIXELS == limit  # Pillow's global left as it was


def test_exactly_max_pixels_is_accepted(tmp_path: Path) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    assert read_image(save_with_pillow(tmp_path / "ok.png", photo(20, 20)), max_pixels=400).width == 20
    assert Image.MAX_IMAGE_PIXELS == limit


# -------------------------------------------------------------------------------------------- paths


def test_unicode_paths_read_and_write(tmp_path: Path) -> None:
    folder = tmp_path / "ночь"
    path = folder / "nuit étoilée 夜.png"
    rgb = random_pixels((6, 7, 3), np.uint16)
    write_image(path, ImageData(rgb))
    assert path.is_file()
    np.testing.assert_array_equal(read_image(path).rgb, rgb)
    assert find_images([folder]) == [InputFile(path, Path("nuit étoilée 夜.png"))]


def test_accepts_str_paths(tmp_path: Path) -> None:
    write_image(str(tmp_path / "s.png"), ImageData(photo()))
    assert read_image(str(tmp_path / "s.png")).width == 56


# ----------------------------------------------------------------------------------- atomic writing


def test_parent_folders_are_created_and_no_temp_file_remains(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c" / "x.tif"
    write_image(target, ImageData(photo()))
    assert target.is_file() and leftovers(target.parent) == []


def test_write_goes_through_a_hidden_temp_file_in_the_same_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renames = []
    real_replace = os.replace

    def recording_replace(source: str, target: str) -> None:
        renames.append((Path(source), Path(target)))
        real_replace(source, target)

    monkeypatch.setattr(write_module.os, "replace", recording_replace)
    write_image(tmp_path / "x.png", ImageData(photo()))
    [(temp, target)] = renames
    assert target == tmp_path / "x.png" and temp.parent == tmp_path
    assert temp.name.startswith(".") and temp.name.endswith(".tmp") and not temp.exists()


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_failed_write_leaves_old_target_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    target = tmp_path / "x.png"
    target.write_bytes(b"previous result")

    def disk_full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(write_module.os, failing, disk_full)
    with pytest.raises(ImageWriteError, match="No space left") as caught:
        write_image(target, ImageData(photo()))
    assert caught.value.path == target
    assert target.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]


def test_failed_write_of_a_new_file_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(write_module.os, "fsync", disk_full)
    with pytest.raises(ImageWriteError):
        write_image(tmp_path / "new.jpg", ImageData(photo()))
    assert list(tmp_path.iterdir()) == []


def test_encoder_failure_raises_write_error_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise cv2.error("encoder exploded")

    monkeypatch.setattr(cv2, "imencode", broken)
    with pytest.raises(ImageWriteError, match="could not encode as PNG"):
        write_image(tmp_path / "x.png", ImageData(photo()))
    assert list(tmp_path.iterdir()) == []


def test_no_overwrite_keeps_the_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "x.png"
    target.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError):
        write_image(target, ImageData(photo()), overwrite=False)
    assert target.read_bytes() == b"keep me" and leftovers(tmp_path) == []
    write_image(tmp_path / "y.png", ImageData(photo()), overwrite=False)
    assert read_image(tmp_path / "y.png").width == 56
    write_image(target, ImageData(photo()))  # overwriting is the default
    assert read_image(target).width == 56


def test_write_rejects_bad_requests(tmp_path: Path) -> None:
    with pytest.raises(ImageWriteError, match="unsupported extension"):
        write_image(tmp_path / "x.gif", ImageData(photo()))
    with pytest.raises(UsageError, match="quality"):
        write_image(tmp_path / "x.jpg", ImageData(photo()), quality=0)
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageWriteError, match="folder"):
        write_image(tmp_path / "dir.png", ImageData(photo()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.png"]


# ---------------------------------------------------------------------------------------- discovery


@pytest.fixture
def image_tree(tmp_path: Path) -> Path:
    root = tmp_path / "shots"
    for name in ["b.png", "a.JPG", "notes.txt", ".hidden.png", "sub/c.tif", "sub/deeper/d.webp", ".cache/e.png"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    return root


def test_find_images_in_a_folder(image_tree: Path) -> None:
    found = find_images([image_tree])
    assert found == [InputFile(image_tree / "a.JPG", Path("a.JPG")), InputFile(image_tree / "b.png", Path("b.png"))]


def test_find_images_recursive_mirrors_relative_paths(image_tree: Path) -> None:
    found = find_images([image_tree], recursive=True)
    assert [item.relative for item in found] == [
        Path("a.JPG"),
        Path("b.png"),
        Path("sub/c.tif"),
        Path("sub/deeper/d.webp"),
    ]
    assert all(item.path == image_tree / item.relative for item in found)


def test_find_images_takes_files_as_given_and_deduplicates(image_tree: Path) -> None:
    found = find_images([image_tree / "notes.txt", image_tree / "b.png", image_tree, str(image_tree / "b.png")])
    assert found == [
        InputFile(image_tree / "a.JPG", Path("a.JPG")),
        InputFile(image_tree / "b.png", Path("b.png")),
        InputFile(image_tree / "notes.txt", Path("notes.txt")),
    ]


def test_find_images_missing_input_raises(image_tree: Path) -> None:
    with pytest.raises(ImageReadError, match="no such file or folder") as caught:
        find_images([image_tree, image_tree / "gone.png"])
    assert caught.value.path == image_tree / "gone.png"


def test_output_path_mirrors_or_flattens() -> None:
    item = InputFile(Path("/in/shots/sub/c.tif"), Path("sub/c.tif"))
    out = Path("/out")
    assert output_path(item, out) == Path("/out/sub/c.tif")
    assert output_path(item, out, suffix="_bright", ext=".png") == Path("/out/sub/c_bright.png")
    assert output_path(item, out, ext="jpg") == Path("/out/sub/c.jpg")
    assert output_path(item, out, suffix="_x", mirror_tree=False) == Path("/out/c_x.tif")
    single = InputFile(Path("/in/photo.jpeg"), Path("photo.jpeg"))
    assert output_path(single, out, suffix="_bright") == Path("/out/photo_bright.jpeg")


def test_a_camera_jpeg_with_previews_is_one_frame_and_a_broken_page_chain_costs_nothing(tmp_path: Path) -> None:
    rgb = photo()
    frames = [Image.fromarray(rgb), Image.fromarray(rgb[::2, ::2].copy())]
    frames[0].save(tmp_path / "cam.jpg", format="MPO", save_all=True, append_images=frames[1:])
    assert Image.open(tmp_path / "cam.jpg").format == "MPO"
    assert read_image(tmp_path / "cam.jpg").frames == 1  # previews are not pages: no note
    Image.fromarray(rgb).save(tmp_path / "one.tif")
    data = bytearray((tmp_path / "one.tif").read_bytes())
    ifd = struct.unpack("<I", data[4:8])[0]
    count = struct.unpack("<H", data[ifd : ifd + 2])[0]
    data[ifd + 2 + 12 * count : ifd + 6 + 12 * count] = struct.pack("<I", len(data) - 4)  # next page: garbage
    (tmp_path / "broken.tif").write_bytes(bytes(data))
    image = read_image(tmp_path / "broken.tif")
    assert image.frames == 1 and image.rgb.shape[:2] == rgb.shape[:2]


def _exif_with_thumbnail(thumbnail: bytes) -> bytes:
    """Raw little-endian EXIF: IFD0 with Make, linked to IFD1 holding a JPEG thumbnail."""
    make = b"Nightcam\0"
    ifd0 = 8
    ifd1 = ifd0 + 2 + 12 + 4
    make_at = ifd1 + 2 + 2 * 12 + 4
    thumb_at = make_at + len(make)
    data = bytearray(b"II*\0" + struct.pack("<I", ifd0))
    data += struct.pack("<H", 1) + struct.pack("<HHII", 0x010F, 2, len(make), make_at) + struct.pack("<I", ifd1)
    data += struct.pack("<H", 2) + struct.pack("<HHII", 0x0201, 4, 1, thumb_at) + struct.pack("<HHII", 0x0202, 4, 1, len(thumbnail))
    data += struct.pack("<I", 0) + make + thumbnail
    return b"Exif\0\0" + bytes(data)


def test_the_exif_thumbnail_of_the_original_is_not_carried(tmp_path: Path) -> None:
    # it shows the dark original, sideways: viewers that show it would show it for the enhanced photo
    import io

    small = io.BytesIO()
    Image.fromarray(photo(12, 16)).save(small, "JPEG")
    path = tmp_path / "t.jpg"
    Image.fromarray(photo(48, 64)).save(path, "JPEG", exif=_exif_with_thumbnail(small.getvalue()))
    with Image.open(path) as original:
        raw = original.info["exif"][6:]
        assert struct.unpack_from("<I", raw, 8 + 2 + 12)[0] != 0  # the test file has its thumbnail
    image = read_image(path)
    assert struct.unpack_from("<I", image.exif, 8 + 2 + 12)[0] == 0  # IFD1 unlinked
    assert parse_exif(image.exif)[MAKE] == "Nightcam"  # the rest kept
    write_image(tmp_path / "out.jpg", image)
    with Image.open(tmp_path / "out.jpg") as written:
        assert struct.unpack_from("<I", written.info["exif"][6:], 8 + 2 + 12)[0] == 0


def test_a_lossless_webp_written_back_lossy_says_so(tmp_path: Path) -> None:
    pixels = photo(32, 48)
    Image.fromarray(pixels).save(tmp_path / "lossless.webp", "WEBP", lossless=True)
    Image.fromarray(pixels).save(tmp_path / "lossy.webp", "WEBP", quality=80)
    Image.fromarray(np.dstack([pixels, np.full(pixels.shape[:2], 200, np.uint8)])).save(
        tmp_path / "alpha.webp", "WEBP", lossless=True)  # an extended (VP8X) file
    lossless, lossy, alpha = (read_image(tmp_path / f"{name}.webp") for name in ("lossless", "lossy", "alpha"))
    assert lossless.lossless_webp and alpha.lossless_webp and not lossy.lossless_webp
    said = write_image(tmp_path / "out.webp", lossless, quality=95)
    assert any("lossless WebP, written lossy at quality 95" in note for note in said)
    assert not any("lossless" in note for note in write_image(tmp_path / "kept.webp", lossless, quality=100))
    assert not any("lossless" in note for note in write_image(tmp_path / "again.webp", lossy, quality=95))


# --- TIFF and PNG variants OpenCV leaves half done (review, session 43) ------------------------


def _dark_rgb(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(10, 60, (16, 20, 3), dtype=np.uint8)


def test_a_16_bit_min_is_white_tiff_is_read_as_it_looks(tmp_path):
    tifffile = pytest.importorskip("tifffile")  # installed with scikit-image (the dev extra)
    gray = _dark_rgb()[..., 0].astype(np.uint16) * 257
    tifffile.imwrite(tmp_path / "w16.tif", 65535 - gray, photometric="miniswhite")
    tifffile.imwrite(tmp_path / "w8.tif", (255 - gray // 257).astype(np.uint8), photometric="miniswhite")
    image = read_image(tmp_path / "w16.tif")
    assert image.gray and image.rgb.dtype == np.uint16 and np.array_equal(image.rgb[..., 0], gray)
    assert np.array_equal(read_image(tmp_path / "w8.tif").rgb[..., 0], (gray // 257).astype(np.uint8))  # OpenCV's own


@pytest.mark.parametrize("kind", ["unspecified", "cmyk"])
def test_a_tiffs_fourth_channel_that_is_not_alpha_is_not_made_alpha(tmp_path, kind):
    rgb = _dark_rgb()
    path = tmp_path / f"{kind}.tif"
    if kind == "unspecified":
        tifffile = pytest.importorskip("tifffile")
        tifffile.imwrite(path, np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)]), photometric="rgb",
                         extrasamples=["unspecified"])
    else:
        Image.fromarray(rgb).convert("CMYK").save(path)
    image = read_image(path)
    assert image.alpha is None and image.rgb.shape == rgb.shape
    assert np.abs(image.rgb.astype(int) - rgb).max() <= (0 if kind == "unspecified" else 2)


def test_a_16_bit_tiffs_associated_alpha_is_divided_out(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    rgb = _dark_rgb().astype(np.uint16) * 257
    alpha = np.full(rgb.shape[:2], 32768, np.uint16)
    alpha[:4] = 0
    premultiplied = np.where(alpha[..., None] > 0, np.rint(rgb * (alpha[..., None] / 65535.0)), 0).astype(np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", np.dstack([premultiplied, alpha]), photometric="rgb", extrasamples=["assocalpha"])
    image = read_image(tmp_path / "a.tif")
    assert np.array_equal(image.alpha, alpha)
    visible = alpha > 0
    assert np.abs(image.rgb[visible].astype(int) - rgb[visible]).max() <= 2  # rounding of the premultiplied file
    assert (image.rgb[~visible] == 0).all()


@pytest.mark.parametrize("bits", [8, 16, 4])
def test_a_gray_pngs_transparent_value_becomes_alpha(tmp_path, bits):
    levels = 2 ** bits - 1
    gray = np.random.default_rng(1).integers(0, levels + 1, (16, 20)).astype(np.uint16 if bits == 16 else np.uint8)
    gray[0, :] = 3
    path = tmp_path / "g.png"
    if bits == 4:  # Pillow writes 4-bit gray PNGs from mode L with bits=4
        Image.fromarray(gray.astype(np.uint8)).save(path, bits=4, transparency=3)
    else:
        Image.fromarray(gray).save(path, transparency=3)
    image = read_image(path)
    assert image.gray and image.alpha is not None
    assert np.array_equal(image.alpha == 0, gray == 3)
    out = tmp_path / "out.png"
    write_image(out, image)
    assert np.array_equal(read_image(out).alpha == 0, gray == 3)  # written as gray + alpha


def test_a_16_bit_cmyk_tiff_is_said_unsupported_not_corrupt(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "c.tif", np.zeros((8, 8, 4), np.uint16), photometric="separated")
    with pytest.raises(ImageReadError, match="16-bit CMYK TIFFs are not supported"):
        read_image(tmp_path / "c.tif")


def test_signed_16_bit_samples_are_named_as_signed(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "s.tif", np.zeros((8, 8), np.int16))
    with pytest.raises(ImageReadError, match=r"signed integer samples \(int16\) are not supported") as caught:
        read_image(tmp_path / "s.tif")
    assert "unsigned 8 or 16 bits" in caught.value.hint
