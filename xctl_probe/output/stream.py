"""The main loop: kernel records in, xctl lines out, until told to stop.

It sleeps in poll() on three descriptors: the ring buffer, a self-pipe that
SIGTERM and SIGINT write to (StopSignals), and stdout itself, which reports
an error when its reader (xctl) goes away, even while no event is due. The
BPF side wakes it only once a share of the ring is waiting (waking costs the
kernel more than the record), so it also looks every POLL_MS: a lone record
reaches stdout within that. Every TALLIES_S it reads what the kernel only
counted of a flood of drops. Lines go to a writer thread (writer.py), so a
stalled reader never stops the draining of the kernel.
"""

import math
import select
import time
from dataclasses import dataclass
from typing import Optional

from ..context.owners import Owners
from ..kernel.drop_reasons import DropReasons
from ..kernel.loader import RING_MAP, LoadedProbe
from ..kernel.ringbuf import RingReader
from .lines import LineMaker
from .stop import StopSignals
from .writer import LineWriter, StdoutClosed

POLL_MS = 200
# How often the drops a flood's keys only counted become lines.
TALLIES_S = 1.0
# At a stop, how long the lines still waiting may take to reach a stalled reader.
FINAL_FLUSH_S = 2.0


@dataclass
class Totals:
    lines: int = 0
    lost: int = 0
    unwritten: int = 0
    stdout_closed: bool = False


class Stream:
    def __init__(self, probe: LoadedProbe, window_s: float, owners: Owners,
                 stop: Optional[StopSignals] = None, out_fd: int = 1,
                 reasons: Optional[DropReasons] = None):
        self._probe = probe
        self._stop = stop
        # Two buffers on the one ring: a batch read ahead (LineMaker, for
        # owners) waits in one while the lines of the batch before are made
        # from the other.
        self._rings = (RingReader(probe.map_fd(RING_MAP)), RingReader(probe.map_fd(RING_MAP)))
        self._current = 0
        self._waiting: Optional[memoryview] = None
        self._maker = LineMaker(owners, window_s, reasons, hz=probe.hz)
        self._writer = LineWriter(out_fd)
        self._out_fd = out_fd

    def pump(self) -> bool:
        """Turns one batch of records into lines for the writer; True if more may wait."""
        raw = self._waiting if self._waiting is not None else self._rings[self._current].read()
        self._waiting = None
        if not raw:
            return False
        # bpf_ktime_get_ns() is CLOCK_MONOTONIC; xctl wants wall-clock time.
        # Taken per batch, so a step of the wall clock (NTP) shows from the next batch.
        offset_ns = time.time_ns() - time.monotonic_ns()
        self._writer.put(self._maker.lines(raw, offset_ns, self._read_ahead),
                         self._probe.lost_records())
        return self._waiting is not None or self._rings[self._current].more()

    def count_drops(self) -> None:
        """Lines for the drops of a flood the kernel only counted since the
        last call (kernel/drop_tallies.py)."""
        raw = self._probe.counted_drops()
        if raw:
            offset_ns = time.time_ns() - time.monotonic_ns()
            self._writer.put(self._maker.lines(raw, offset_ns), self._probe.lost_records())

    def _read_ahead(self) -> memoryview:
        """The next batch, read into the other buffer now, made into lines by
        the next pump."""
        self._current ^= 1
        self._waiting = self._rings[self._current].read()
        return self._waiting

    def drain(self) -> None:
        while self.pump():
            pass

    @property
    def lines_written(self) -> int:
        return self._writer.lines

    def wait_written(self, timeout_s: float) -> bool:
        """Until every line made so far is written (or ``timeout_s``)."""
        return self._writer.wait_written(timeout_s)

    def close(self, flush_s: float) -> int:
        """Stops reading the ring; gives waiting lines ``flush_s`` to go out.
        The lines left unwritten."""
        for ring in self._rings:
            ring.close()
        return self._writer.close(flush_s)

    def run(self, duration_s: Optional[float] = None) -> Totals:
        """Until a stop signal, stdout closing, or ``duration_s`` seconds, which
        ends the stream exactly as SIGTERM would."""
        totals = Totals()
        deadline = None if duration_s is None else time.monotonic() + duration_s
        poller = select.poll()
        # Either buffer's descriptor tells that the ring has records.
        poller.register(self._rings[0].fileno(), select.POLLIN)
        poller.register(self._stop.fd, select.POLLIN)
        # No events asked for: poll still reports POLLERR/POLLHUP/POLLNVAL.
        poller.register(self._out_fd, 0)
        tallies_at = time.monotonic() + TALLIES_S
        try:
            while not self._stop.requested:
                timeout_ms = POLL_MS
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    timeout_ms = min(POLL_MS, math.ceil(left * 1000))
                for fd, _ in poller.poll(timeout_ms):
                    if fd == self._out_fd:
                        raise StdoutClosed
                if self._writer.closed:
                    raise StdoutClosed
                self.drain()
                if time.monotonic() >= tallies_at:
                    tallies_at = time.monotonic() + TALLIES_S
                    self.count_drops()
            # Detach first, so the ring holds a final set of records, then deliver them.
            self._probe.detach()
            self.drain()
            self.count_drops()
            # Runs the kernel skipped after the last batch: no batch brought their count.
            self._writer.put([], self._probe.lost_records())
        except StdoutClosed:
            totals.stdout_closed = True
        finally:
            totals.unwritten = self.close(0 if totals.stdout_closed else FINAL_FLUSH_S)
        totals.stdout_closed = totals.stdout_closed or self._writer.closed
        totals.lines = self._writer.lines
        totals.lost = self._writer.lost
        return totals
