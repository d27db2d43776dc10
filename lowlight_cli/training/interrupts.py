"""Holding Ctrl-C and SIGTERM back while a training step updates its state.

An optimiser step, the scheduler, the EMA and the step counter change together; an interrupt
between two of them would save weights one step ahead of the counter (or an Adam state half
updated), and the resumed run would drift from a straight one.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """While inside, SIGINT and SIGTERM are recorded instead of handled; on leaving, the first one
    recorded is handed to the handler that was in place (which raises ``KeyboardInterrupt`` or the
    CLI's ``Terminated``). Main thread only (elsewhere signals cannot be handled): a no-op there."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def record(signum: int, frame: object) -> None:
        pending.append(signum)

    previous = {sig: signal.signal(sig, record) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if pending:
            handler = previous[pending[0]]
            if callable(handler):
                handler(pending[0], None)
            elif handler == signal.SIG_DFL and pending[0] == signal.SIGINT:
                raise KeyboardInterrupt
            elif handler == signal.SIG_DFL:  # the default action (SIGTERM ends the process), as if not held
                signal.raise_signal(pending[0])
