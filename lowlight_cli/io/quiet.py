"""Keep the C libraries behind OpenCV and Pillow from printing: the library reports through errors and notes."""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import cv2
from PIL import Image

_cv_log = cv2.utils.logging
_cv_lock = threading.Lock()
_cv_users = 0
_cv_saved_level = _cv_log.LOG_LEVEL_WARNING
_pillow_lock = threading.Lock()
_stderr_lock = threading.Lock()

# How the C decoders behind OpenCV start the lines they print to the process's standard error:
# libpng's errors and warnings, libjpeg's warnings (the decode goes on and returns an image).
DECODER_PREFIXES: tuple[str, ...] = (
    "libpng ",
    "Corrupt JPEG data",
    "Premature end of JPEG file",
    "Invalid SOS parameters",
    "Unsupported marker type",
    "Warning: unknown JFIF revision",
)


@contextmanager
def opencv_silenced() -> Iterator[None]:
    """Silence OpenCV's log (it prints decoder warnings such as "PNG input buffer is incomplete").

    The log level is process-wide: it is lowered while at least one caller is inside and restored
    when the last one leaves, so concurrent decodes in threads do not serialise on a lock.
    """
    global _cv_users, _cv_saved_level
    with _cv_lock:
        if _cv_users == 0:
            _cv_saved_level = _cv_log.getLogLevel()
            _cv_log.setLogLevel(_cv_log.LOG_LEVEL_SILENT)
        _cv_users += 1
    try:
        yield
    finally:
        with _cv_lock:
            _cv_users -= 1
            if _cv_users == 0:
                _cv_log.setLogLevel(_cv_saved_level)


@contextmanager
def pillow_guarded(max_pixels: int) -> Iterator[None]:
    """Run Pillow with its decompression-bomb limit at ``max_pixels`` and its warnings muted.

    Pillow warns above ``MAX_IMAGE_PIXELS`` and raises ``DecompressionBombError`` above twice that;
    the caller compares the size with ``max_pixels`` itself and turns the error into
    ``ImageTooLargeError``. The global is set for the duration only, under a lock.
    """
    with _pillow_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


@contextmanager
def decoder_messages() -> Iterator[list[str]]:
    """Capture what C decoders print to the process's standard error (file descriptor 2) meanwhile.

    libpng prints its errors and libjpeg its warnings there ("Corrupt JPEG data: premature end of
    data segment") while OpenCV goes on; the library must not print, and a warning is worth
    reporting with the file's name. Yields a list that holds, after the block, the captured lines
    that start with one of :data:`DECODER_PREFIXES`; every other byte written to descriptor 2 in
    the meantime (another thread's progress display) is written back to it afterwards, in order,
    so nothing is lost. Blocks capture one at a time (descriptor 2 is process-wide). Where
    descriptor 2 cannot be redirected, the block runs as it is and the list stays empty.
    """
    lines: list[str] = []
    with _stderr_lock:
        try:
            sys.stderr.flush()
        except (AttributeError, OSError, ValueError):
            pass
        try:
            saved = os.dup(2)
        except OSError:
            yield lines
            return
        try:
            with tempfile.TemporaryFile() as capture:
                os.dup2(capture.fileno(), 2)
                try:
                    yield lines
                finally:
                    os.dup2(saved, 2)
                    capture.seek(0)
                    captured = capture.read()
                lines.extend(_replay(captured, saved))
        finally:
            os.close(saved)


def _replay(captured: bytes, fd: int) -> list[str]:
    """The decoder lines of ``captured``; the rest is written to ``fd`` unchanged."""
    decoder: list[str] = []
    rest: list[bytes] = []
    for line in captured.splitlines(keepends=True):
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if text.startswith(DECODER_PREFIXES):
            decoder.append(text)
        else:
            rest.append(line)
    pending = memoryview(b"".join(rest))
    while pending:
        try:
            pending = pending[os.write(fd, pending):]
        except OSError:
            break
    return decoder
