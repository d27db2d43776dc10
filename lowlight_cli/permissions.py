"""The modes of files and folders lowlight publishes: 0o666 / 0o777 minus the process umask.

Temporary files made with :func:`tempfile.mkstemp` are private (0600) until they are renamed into
place; whatever is renamed into place gets these modes first, so a checkpoint or an export on a
shared machine is as readable as any other file its owner writes.
"""

from __future__ import annotations

import os


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it; put it back at once
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()
