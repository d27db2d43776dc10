"""Images read on a background thread before they are needed.

Decoding a photo (a 12 MP JPEG: 0.13 to 0.24 s on one core of an AMD EPYC Zen 3, docs/performance.md) runs in C with
the GIL released, so it can go on beside other work: ``lowlight enhance`` reads the next photo of a
folder while the model enhances this one. Start reads once the program's imports are done: a
thread that imports while another does can see a module half-initialised (reading the first photo
while torch loaded was tried and dropped for that, docs/performance.md, session 32).

An image read ahead is handed out only when it is what a plain read at the time of use would give:
the same path and pixel limit, the file unchanged on disk since (size, modification time, inode).
Otherwise, and whenever the read ahead failed, :meth:`ImagePrefetch.take` reads the file then, so
its errors are those of :func:`~lowlight_cli.io.read.read_image` at that moment (a memory check
made while another photo was in memory never refuses a file).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from lowlight_cli.io.image import ImageData
from lowlight_cli.io.read import DEFAULT_MAX_PIXELS, read_image


def _key(path: str | Path) -> Path:
    """One spelling per file for the table of reads (``photo.jpg`` and ``./photo.jpg`` alike)."""
    return Path(os.path.abspath(path))


def _identity(path: Path) -> tuple[int, int, int, int] | None:
    """What tells a file apart from a changed one: device, inode, size and modification time."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass
class _Read:
    """One read ahead: the file's identity when it started, and the outcome."""

    max_pixels: int
    identity: tuple[int, int, int, int] | None
    done: threading.Event = field(default_factory=threading.Event)
    image: ImageData | None = None


class ImagePrefetch:
    """Read images on background threads, ahead of their use, and hand each out once.

    ``start(path)`` begins reading ``path`` on a daemon thread (nothing when it is already being
    read); ``take(path)`` returns that image, waiting for the read to finish, when it is still what
    a read now would give, and otherwise reads the file now. What was read ahead and never taken is
    dropped by :meth:`discard`. Thread-safe for one consumer: the thread that calls ``take``.
    """

    def __init__(self) -> None:
        self._reads: dict[Path, _Read] = {}
        self._lock = threading.Lock()

    def start(self, path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        """Begin reading ``path`` in the background."""
        key = _key(path)
        with self._lock:
            if key in self._reads:
                return
            read = _Read(max_pixels, _identity(key))
            self._reads[key] = read
        Image.init()  # every format's plugin loaded here, so that no other thread imports one while this one does
        try:
            threading.Thread(target=self._read, args=(key, read), name="lowlight-read-ahead", daemon=True).start()
        except RuntimeError:  # no thread to be had: the file is read at use, as without a prefetch
            read.done.set()

    @staticmethod
    def _read(path: Path, read: _Read) -> None:
        try:
            read.image = read_image(path, max_pixels=read.max_pixels)
        except Exception:  # noqa: BLE001 - any failure is the plain read's to report, at the time of use
            read.image = None
        finally:
            read.done.set()

    def pending(self) -> list[Path]:
        """The paths started and not yet taken, in the order they were started."""
        with self._lock:
            return list(self._reads)

    def take(self, path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, then: str | Path | None = None) -> ImageData:
        """The image of ``path``: the one read ahead when it is still valid, else read now. ``then``:
        a file to :meth:`start` reading once this one is read, or failed to be (not after an
        interrupt), so that the next photo decodes while this one is used.

        Raises what :func:`~lowlight_cli.io.read.read_image` raises.
        """
        try:
            image = self._take(path, max_pixels)
        except Exception:
            if then is not None:
                self.start(then, max_pixels=max_pixels)
            raise
        if then is not None:
            self.start(then, max_pixels=max_pixels)
        return image

    def _take(self, path: str | Path, max_pixels: int) -> ImageData:
        key = _key(path)
        with self._lock:
            read = self._reads.pop(key, None)
        if read is not None:
            read.done.wait()
            if (read.image is not None and read.max_pixels == max_pixels
                    and read.identity is not None and read.identity == _identity(key)):
                return read.image
        return read_image(path, max_pixels=max_pixels)  # as given: its errors name the file as the user did

    def discard(self, *, wait: bool = False) -> None:
        """Drop every image read ahead and not taken. A read still running ends on its own and is
        dropped; with ``wait``, it is waited for first: a decoder holds the process's standard error
        while it runs (:func:`~lowlight_cli.io.quiet.decoder_messages`), so a program about to
        report and exit waits for it, or what it writes meanwhile could be lost."""
        with self._lock:
            dropped = list(self._reads.values())
            self._reads.clear()
        if wait:
            for read in dropped:
                read.done.wait()
