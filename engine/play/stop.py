"""Stopping play cleanly from a signal.

Ctrl-C (SIGINT) and SIGTERM ask the loop to stop at the next tick boundary, so
a frame is never half-recorded (in the clip but not in the log). A second
Ctrl-C while stopping raises KeyboardInterrupt at once; the recording is still
closed by the loop's `finally`.
"""

from __future__ import annotations

import signal
import threading

STOP = threading.Event()


def install() -> None:
    def handler(signum, frame):
        if STOP.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        STOP.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
