"""Keep the C libraries behind OpenCV and Pillow from printing: the library reports through errors and notes."""

from __future__ import annotations

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
