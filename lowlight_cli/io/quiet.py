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
_stderr_lock = threading.RLock()  # re-entrant: a thread may nest decoder_messages()

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

    libpng prints its errors and warnings there and libjpeg its warnings ("Corrupt JPEG data:
    premature end of data segment") while OpenCV goes on; the library must not print, and a
    warning is worth reporting with the file's name. Yields a list that holds, after the block,
    the captured lines from one of :data:`DECODER_PREFIXES` on (also when another writer's text
    without a newline, a progress display's redraw, came first on that line); every other byte
    written to descriptor 2 in the meantime (another thread's progress display) is written back to
    it afterwards, in order, also when the block raises. Blocks capture one at a time, so decodes
    in threads take turns (descriptor 2 is process-wide); a thread may nest blocks. Where
    descriptor 2 cannot be redirected (no descriptor 2, no temporary file), the block runs as it
    is and the list stays empty.
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
            try:
                capture = tempfile.TemporaryFile()
            except OSError:
                yield lines
                return
            with capture:
                try:
                    os.dup2(capture.fileno(), 2)
                except OSError:
                    yield lines
                    return
                try:
                    yield lines
                finally:
                    os.dup2(saved, 2)
                    capture.seek(0)
                    lines.extend(_replay(capture.read(), saved))
        finally:
            os.close(saved)


def _replay(captured: bytes, fd: int) -> list[str]:
    """The decoder lines of ``captured`` (from the first decoder prefix on each line); the rest is
    written to ``fd`` unchanged, byte for byte."""
    prefixes = [prefix.encode() for prefix in DECODER_PREFIXES]
    decoder: list[str] = []
    rest: list[bytes] = []
    for line in captured.splitlines(keepends=True):
        found = [i for i in (line.find(prefix) for prefix in prefixes) if i >= 0]
        if not found:
            rest.append(line)
            continue
        start = min(found)  # another writer's text may come first on the line (a redraw without a newline)
        rest.append(line[:start])
        decoder.append(line[start:].decode("utf-8", "replace").rstrip("\r\n"))
    pending = memoryview(b"".join(rest))
    while pending:
        try:
            pending = pending[os.write(fd, pending):]
        except OSError:
            break
    return decoder
