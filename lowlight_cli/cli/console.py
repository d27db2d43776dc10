"""The CLI's consoles: results on stdout, everything else (progress, messages) on stderr."""

from __future__ import annotations

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

_UNBOUNDED = 100_000  # columns: a table measured without a terminal's limit

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_table(console: Console, table: Table) -> None:
    """A result table on ``console`` (stdout). Piped or redirected (no terminal to fit), at its natural
    width, so that no cell is folded: ``lowlight models | grep crnet-curve-dn-lol`` finds the line whole."""
    if console.is_terminal:
        console.print(table)
        return
    natural = Measurement.get(console, console.options.update_width(_UNBOUNDED), table).maximum
    # a console of its own: print(width=) cannot go past the console's width
    Console(file=console.file, highlight=False, soft_wrap=True, width=max(console.width, natural)).print(table)
