"""The thread that makes lines: batches the drain hands over (handover.py)
into lines for the sink (sink.py: the writer of JSONL, or another reader's).

Making a line may read /proc (the owner's comm and job, a dropped packet's
socket in /proc/PID/net/tcp), and such a read may take long: a process in D
state, a node with a huge table of sockets. It happens here, so the lines
wait and the drain of the kernel's ring (drain.py) does not.
"""

import signal
import threading
import time
from typing import Callable, Optional, Sequence

from .handover import Batches
from .lines import LineMaker, ReadAhead
from .sink import Keep, Sink, Tap


class LineThread:
    def __init__(self, maker: LineMaker, batches: Batches, ahead: ReadAhead,
                 sink: Sink, lost: Callable[[], int], keep: Optional[Keep] = None,
                 taps: Sequence[Tap] = ()):
        """``ahead()`` gives the records after a batch (LineMaker reads them
        for owners), ``lost()`` the kernel's count of records it could not
        give; ``keep`` filters each batch's lines, and each of ``taps`` sees
        those kept before the sink does."""
        self._maker = maker
        self._batches = batches
        self._ahead = ahead
        self._sink = sink
        self._lost = lost
        self._keep = keep
        self._taps = tuple(taps)
        self.failure: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="xctl-probe-lines", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        # Stop signals belong to the main thread.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        try:
            while True:
                raw = self._batches.take()
                if raw is None:
                    return
                # bpf_ktime_get_ns() is CLOCK_MONOTONIC; xctl wants wall-clock time.
                # Taken per batch, so a step of the wall clock (NTP) shows from the next batch.
                offset_ns = time.time_ns() - time.monotonic_ns()
                lines = self._maker.lines(memoryview(raw), offset_ns, self._ahead)
                if self._keep is not None:
                    lines = self._keep(lines)
                lost = self._lost()
                for tap in self._taps:
                    tap(lines, lost)
                self._sink.put(lines, lost)
        except BaseException as exc:  # raised again on the main thread (check)
            self.failure = exc

    def check(self) -> None:
        """Raises, on the caller's thread, what ended the line thread, if anything did."""
        if self.failure is not None:
            raise self.failure

    def join(self, timeout_s: float) -> bool:
        """Until the thread has ended (or ``timeout_s``); whether it has."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()
