"""Holding Ctrl-C and SIGTERM back while state that must change together changes.

A training step's optimiser, scheduler, EMA and step counter: an interrupt between two of them
would save weights one step ahead of the counter (or an Adam state half updated), and the resumed
run would drift from a straight one. An export's files as they are renamed into place: an
interrupt between two renames would leave a checkpoint folder with a new config and old weights.
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

    # SIGHUP too (the CLI turns it into an interrupt): unless ignored (nohup), where it stays ignored
    hangup = getattr(signal, "SIGHUP", None)
    held = {signal.SIGINT, signal.SIGTERM} | (
        {hangup} if hangup is not None and signal.getsignal(hangup) not in (signal.SIG_IGN, None) else set())
    previous = {sig: signal.signal(sig, record) for sig in held}
    try:
        yield
    finally:
        # both handlers go back together: a signal in between would find one restored, the other recording
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, held)
        try:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # one that came meanwhile goes to its own handler
    # only after the body completed: an error inside it propagates as it is (not hidden by the signal)
    if pending:
        handler = previous[pending[0]]
        if callable(handler):
            handler(pending[0], None)
        elif handler == signal.SIG_DFL and pending[0] == signal.SIGINT:
            raise KeyboardInterrupt
        elif handler == signal.SIG_DFL:  # the default action (SIGTERM ends the process), as if not held
            signal.raise_signal(pending[0])
