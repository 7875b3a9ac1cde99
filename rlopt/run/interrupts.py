"""SIGINT (Ctrl-C) and SIGTERM (how Slurm preempts) during a run: stop at once, resumable.

While `raise_on_interrupt()` is active, either signal raises `RunInterrupted` wherever the run
is. That leaves the folder consistent however deep the run was: whole files (checkpoint, summary,
plots, policy) are written to a temporary file and renamed, and CSV rows written after the last
checkpoint lie past the bytes it committed, so a resume cuts them off and redoes those steps. The
handler fires once; a second signal gets the handler that was there before (Ctrl-C twice still
stops a run that hangs while recording its interruption).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

from rlopt.errors import RunInterrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def raise_on_interrupt():
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread only
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def interrupted(signum, frame):
        restore()
        raise RunInterrupted(signum)

    for sig in SIGNALS:
        signal.signal(sig, interrupted)
    try:
        yield
    finally:
        restore()
