"""The stream: kernel records in, xctl lines out, until told to stop.

Three threads, so that nothing slow stops the draining of the kernel's ring
buffer. The main thread drains it (drain.py) and only that: it polls, and
copies batches of records out of the ring into a bounded hand-over
(handover.py). The line thread (line_thread.py) makes lines of them, which
may read /proc, and hands them to the writer thread (writer.py), which a
stalled reader of stdout may hold up. A slow /proc read delays lines (the
records wait in the hand-over, up to its bound); a stalled reader merges
them; neither stops the drain. Every TALLIES_S (drain.py) the drain also
hands over what the kernel only counted of a flood of drops. The writer of
JSONL is one sink of lines (sink.py) among others a person or a scraper reads.
"""

import time
from dataclasses import dataclass
from typing import Optional, Sequence

from ..context.owners import Owners
from ..kernel.drop_reasons import DropReasons
from ..kernel.loader import RING_MAP, LoadedProbe
from .drain import Drain
from .handover import Batches
from .line_thread import LineThread
from .lines import LineMaker
from .sink import Keep, Sink, Tap
from .stop import StopSignals
from .writer import LineWriter

# At a stop, how long the records still waiting may take to become lines, and
# then how long the lines still waiting may take to reach a stalled reader.
FINAL_FLUSH_S = 2.0


@dataclass
class Totals:
    lines: int = 0
    records: int = 0  # taken from the kernel's ring
    lost: int = 0
    unwritten: int = 0
    stdout_closed: bool = False
    # Set by the caller: --metrics could not be served (errors.EXIT_METRICS_UNSERVED).
    metrics_unserved: bool = False


class Stream:
    def __init__(self, probe: LoadedProbe, window_s: float, owners: Owners,
                 stop: Optional[StopSignals] = None, out_fd: int = 1,
                 reasons: Optional[DropReasons] = None, sink: Optional[Sink] = None,
                 keep: Optional[Keep] = None, taps: Sequence[Tap] = ()):
        """``sink`` takes the lines (by default JSONL onto ``out_fd``, whose
        closing ends the stream); ``keep`` and ``taps``: line_thread.py."""
        self._probe = probe
        self._stop = stop
        self._out_fd = out_fd
        self._batches = Batches()
        self._drain = Drain(probe.map_fd(RING_MAP), self._batches, probe.counted_drops)
        self._sink = sink if sink is not None else LineWriter(out_fd)
        self._lines = LineThread(LineMaker(owners, window_s, reasons, hz=probe.hz),
                                 self._batches, self._drain.ahead, self._sink,
                                 probe.lost_records, keep, taps)
        self._lines.start()

    def drain(self, timeout_s: float) -> bool:
        """On the caller's thread, as the main loop drains: copies everything
        the ring holds to the line thread, waiting for room for at most
        ``timeout_s``; whether it took it all."""
        return self._drain.drain_all(timeout_s)

    @property
    def lines_written(self) -> int:
        return self._sink.lines

    @property
    def lost(self) -> int:
        """Records lost so far, as the lines say."""
        return self._sink.lost

    def wait_written(self, timeout_s: float) -> bool:
        """Until every record drained so far is a line, written (or ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        made = self._batches.wait_idle(timeout_s)
        self._lines.check()
        return made and self._sink.wait_written(max(0.0, deadline - time.monotonic()))

    def close(self, flush_s: float) -> int:
        """Stops reading the ring and making lines (the line thread ends after
        its batch); gives waiting lines ``flush_s`` to go out. The lines left
        unwritten."""
        self._batches.abandon()
        self._batches.close()
        self._lines.join(flush_s)
        self._drain.close()
        return self._sink.close(flush_s)

    def run(self, duration_s: Optional[float] = None) -> Totals:
        """Until a stop signal, stdout closing, or ``duration_s`` seconds, which
        ends the stream exactly as SIGTERM would."""
        totals = Totals()
        deadline = None if duration_s is None else time.monotonic() + duration_s
        left_behind = 0
        try:
            totals.stdout_closed = self._drain.run(self._stop, self._out_fd, deadline,
                                                   self._ended) or self._sink.closed
            self._lines.check()
            if not totals.stdout_closed:
                left_behind = self._final()
        finally:
            totals.unwritten = self.close(0 if totals.stdout_closed else FINAL_FLUSH_S)
        totals.stdout_closed = totals.stdout_closed or self._sink.closed
        totals.lines = self._sink.lines
        totals.records = self._drain.records
        totals.lost = self._sink.lost + left_behind
        return totals

    def _ended(self) -> bool:
        """Whether stdout's reader went away, or the line thread failed."""
        return self._sink.closed or self._lines.failure is not None

    def _final(self) -> int:
        """After the loop: detaches first, so the ring holds a final set of
        records, then makes them lines. The records it had to leave behind
        (lines held up past FINAL_FLUSH_S, by a /proc read that blocks)."""
        self._probe.detach()
        emptied = self._drain.drain_all(FINAL_FLUSH_S)
        self._drain.count_drops()
        made = self._batches.wait_idle(FINAL_FLUSH_S)
        self._lines.check()
        left = 0 if emptied else self._drain.count_rest()
        if not made:
            left += self._batches.abandon()
        # Runs the kernel skipped after the last batch: no batch brought their count.
        self._sink.put([], self._probe.lost_records())
        return left
