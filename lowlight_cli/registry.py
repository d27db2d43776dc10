"""One generic registry for named factories (models, losses, metrics).

Registries are filled by explicit imports (``lowlight_cli.models`` imports each model module), never
by scanning folders. Duplicate names raise; unknown names raise
:class:`~lowlight_cli.errors.UnknownNameError` with a "did you mean" hint.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> entry mapping for one kind of thing.

    Args:
        kind: what is registered ("model", "metric", "loss"); used in error messages.
        listed: which entries the error of an unknown name lists (None: all); the others are still
            found by their names and offered for a close misspelling (test sizes of models).
        listing: the command that lists the names, for the hint of an unknown name without close
            matches (None: the error's own list of the names is all there is).

    Example:
        >>> reg = Registry[int]("number")
        >>> _ = reg.register("one", 1)
        >>> reg.get("one")
        1
    """

    def __init__(self, kind: str, *, listing: str | None = None, listed: Callable[[T], bool] | None = None) -> None:
        self.kind = kind
        self.listing = listing
        self.listed = listed  # which entries an unknown name's error lists (None: all)
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name``; raises ``ValueError`` if the name is taken."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def decorator(self, name: str) -> Callable[[T], T]:
        """Return a decorator that registers the decorated object under ``name``."""

        def wrap(entry: T) -> T:
            return self.register(name, entry)

        return wrap

    def get(self, name: str) -> T:
        """Look ``name`` up; raises :class:`UnknownNameError` with close matches as a hint, and
        ``TypeError`` for a name that is not a string."""
        if not isinstance(name, str):
            raise TypeError(f"a {self.kind} name must be a string, got {type(name).__name__} {name!r}")
        try:
            return self._entries[name]
        except KeyError:
            shown = [n for n, e in self._entries.items() if self.listed is None or self.listed(e)]
            folded = [n for n in self._entries if n.lower() == name.lower()]  # CRNet -> crnet
            close = folded or difflib.get_close_matches(name.lower(), list(self._entries), n=3, cutoff=0.6)  # 0.5 offered "pie" for "nope"
            hint = f"did you mean {', '.join(close)}?" if close else None
            if hint is None and self.listing:
                hint = f"run `{self.listing}` to list them"
            available = ", ".join(sorted(shown))
            raise UnknownNameError(f"unknown {self.kind} {name!r} (available: {available})", hint=hint) from None

    def names(self) -> list[str]:
        """Registered names in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
