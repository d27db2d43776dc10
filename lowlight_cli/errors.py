"""Typed exceptions of the library.

Every error a user can cause (a bad file, a missing checkpoint, an unknown name) is a subclass of
:class:`LowlightError`. The CLI maps these to one-line messages with a hint and an exit code; any
other exception is a bug and stays loud.
"""

from __future__ import annotations

from pathlib import Path


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type's name when it has none), for a one-line error."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class LowlightError(Exception):
    """Base class of all errors the user can act on.

    Args:
        message: what went wrong, in one line.
        hint: what to do about it (optional), shown by the CLI under the message.
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(LowlightError):
    """The request itself is malformed (bad option combination or value)."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration value is invalid."""


class InputError(UsageError, ValueError):
    """An image or tensor handed to the library that it cannot enhance (dtype, range, shape)."""


class UnknownNameError(UsageError, KeyError):
    """A name (model, metric, loss) is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class ImageError(LowlightError):
    """Base class for problems with one image file; carries the path."""

    def __init__(self, path: str | Path, message: str, *, hint: str | None = None) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path}: {message}", hint=hint)


class ImageReadError(ImageError):
    """The file is missing, empty, corrupt or not an image."""


class ImageTooLargeError(ImageReadError):
    """The image has more pixels than allowed (decompression-bomb guard)."""


class ImageWriteError(ImageError):
    """The image could not be written (format, permissions, disk)."""


class DiskFullError(ImageWriteError):
    """No space left (or the quota is spent) where the image is written: the next would fail too."""


class OutputExistsError(ImageError):
    """The output file exists and overwriting was not asked for."""


class WeightsError(LowlightError):
    """Base class for checkpoint resolution and loading problems."""


class WeightsNotFoundError(WeightsError):
    """No checkpoint could be found for the request."""


class WeightsIntegrityError(WeightsError):
    """A downloaded or stored checkpoint does not match its recorded sha256."""


class CheckpointError(WeightsError):
    """A checkpoint folder is malformed or does not match the architecture."""


class ModelOutputError(LowlightError):
    """The model produced no usable image (non-finite, or one flat colour): that file fails, nothing is written."""


class DeviceError(LowlightError):
    """The requested compute device is not available."""


class DataError(LowlightError):
    """A dataset is missing or malformed."""


class SizeMismatchError(DataError):
    """A prediction and its reference differ in size: that pair cannot be scored."""


class MetricError(LowlightError):
    """A metric cannot be computed on this input (e.g. image too small for NIQE)."""


class TrainingError(LowlightError):
    """Training cannot go on (its loss stopped being a finite number)."""


class ExportError(LowlightError):
    """Export failed or the exported model disagrees with PyTorch."""
