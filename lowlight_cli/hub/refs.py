"""Names of Hub checkpoints (``hf-hub:org/repo@revision``) and where checkpoints live on disk."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import lowlight_cli

from ..errors import WeightsNotFoundError

HUB_PREFIX = "hf-hub:"

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REPO_ID = re.compile(rf"{_NAME}/{_NAME}")
_REVISION = re.compile(r"[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*")
_REF_HINT = (
    "write hf-hub:ORG/REPO or hf-hub:ORG/REPO@REVISION (a branch, tag or commit hash), e.g. hf-hub:lowlight/crnet@main"
)


def _syntax_error(text: str) -> WeightsNotFoundError:
    return WeightsNotFoundError(f"not a Hub reference: {text!r}", hint=_REF_HINT)


@dataclass(frozen=True)
class HubRef:
    """A checkpoint repository on the Hugging Face Hub at one revision.

    Attributes:
        repo_id: ``org/repo``.
        revision: branch, tag or commit hash (``main`` by default). Pin a tag or commit for
            reproducible downloads: the cache is keyed by this name and never refreshed.

    Raises:
        WeightsNotFoundError: either part is malformed (also when built directly).
    """

    repo_id: str
    revision: str = "main"

    def __post_init__(self) -> None:
        if not (_REPO_ID.fullmatch(self.repo_id) and _REVISION.fullmatch(self.revision)) or any(
            ".." in part or "--" in part for part in (self.repo_id, self.revision)
        ):
            raise _syntax_error(f"{HUB_PREFIX}{self.repo_id}@{self.revision}")

    @classmethod
    def parse(cls, text: str) -> HubRef:
        """Parse ``hf-hub:org/repo@revision`` or ``hf-hub:org/repo`` (revision ``main``).

        Raises:
            WeightsNotFoundError: bad syntax, with a hint showing the accepted forms.
        """
        if not is_hub_ref(text):
            raise _syntax_error(text)
        repo_id, at, revision = text[len(HUB_PREFIX) :].partition("@")
        if at and not revision:
            raise _syntax_error(text)
        try:
            return cls(repo_id, revision or "main")
        except WeightsNotFoundError:
            raise _syntax_error(text) from None

    def __str__(self) -> str:
        return f"{HUB_PREFIX}{self.repo_id}@{self.revision}"


def is_hub_ref(text: object) -> bool:
    """Whether ``text`` is a string naming a Hub checkpoint (starts with ``hf-hub:``); paths are not."""
    return isinstance(text, str) and text.startswith(HUB_PREFIX)


def cache_dir() -> Path:
    """Root of lowlight's cache: ``$LOWLIGHT_CACHE``, else ``$XDG_CACHE_HOME/lowlight``, else ``~/.cache/lowlight``.

    Downloaded checkpoints live under ``cache_dir()/"weights"/<org>--<repo>/<revision>/``.
    Read at every call, so changing the environment takes effect at once.
    """
    if explicit := os.environ.get("LOWLIGHT_CACHE"):
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "lowlight"


def cache_folder(ref: HubRef) -> Path:
    """Where the verified download of ``ref`` lives: ``cache_dir()/weights/<org>--<repo>/<revision>/``."""
    # "--" is refused inside repo ids and revisions, so these names cannot collide.
    return cache_dir() / "weights" / ref.repo_id.replace("/", "--") / ref.revision.replace("/", "--")


def bundled_weights_dir() -> Path | None:
    """The folder of checkpoints shipped with the project, ``<folder>/<model name>/``, or None.

    ``weights/`` beside the package (source checkout, editable install) is preferred over
    ``lowlight_cli/weights/`` (installed package data).
    """
    package = Path(lowlight_cli.__file__).parent
    for candidate in (package.parent / "weights", package / "weights"):
        if candidate.is_dir():
            return candidate
    return None
