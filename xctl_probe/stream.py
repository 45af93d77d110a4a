"""The main loop: kernel records in, xctl lines out, until told to stop.

It sleeps in poll() on three descriptors: the ring buffer, a self-pipe that
SIGTERM and SIGINT write to (StopSignals), and stdout itself, which reports
an error when its reader (xctl) goes away, even while no event is due. The
BPF side wakes it only once a share of the ring is waiting (waking costs the
kernel more than the record), so it also looks every POLL_MS: a lone record
reaches stdout within that.
"""

import math
import os
import select
import signal
import time
from dataclasses import dataclass
from typing import Optional

from .accounting import segs as segs_of
from .decoder import SOURCE_CLOSE, decode
from .event import to_event
from .flows import FlowRates, format_rate
from .loader import RING_MAP, LoadedProbe
from .owners import Owners
from .ringbuf import RingReader
from .writer import JsonlWriter, StdoutClosed

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
POLL_MS = 200


class _Stop(Exception):
    """A stop signal arrived while a write was blocked on a stalled reader."""


class StopSignals:
    """SIGTERM and SIGINT as a flag, and a descriptor poll() wakes up on.

    Installed by the CLI before anything is loaded, so a signal that comes
    while the probe is still starting ends it as cleanly as one that comes
    later: the loop sees the flag and stops at once.
    """

    def __init__(self):
        self.requested = False
        self.fd = -1
        self._wake_w = -1
        self._interrupt = lambda: False
        self._previous = {}
        self._previous_wakeup = -1

    def interrupt_when(self, predicate) -> None:
        """While ``predicate()`` holds, a signal interrupts the code it lands in."""
        self._interrupt = predicate

    def _on_signal(self, signum, frame) -> None:
        self.requested = True
        if self._interrupt():
            raise _Stop

    def __enter__(self) -> "StopSignals":
        self.fd, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        self._previous_wakeup = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        return self

    def __exit__(self, *exc) -> None:
        signal.set_wakeup_fd(self._previous_wakeup)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        os.close(self.fd)
        os.close(self._wake_w)


@dataclass
class Totals:
    lines: int = 0
    lost: int = 0
    stdout_closed: bool = False


class Stream:
    def __init__(self, probe: LoadedProbe, window_s: float, owners: Owners, stop: StopSignals,
                 out_fd: int = 1):
        self._probe = probe
        self._stop = stop
        self._owners = owners
        self._ring = RingReader(probe.map_fd(RING_MAP))
        self._flows = FlowRates(int(window_s * 1e9))
        self._writer = JsonlWriter(out_fd)
        self._out_fd = out_fd
        self._lost_reported = 0

    def pump(self) -> bool:
        """Turns one batch of records into lines and writes them; True if more may wait."""
        raw = self._ring.read()
        if not raw:
            return False
        # bpf_ktime_get_ns() is CLOCK_MONOTONIC; xctl wants wall-clock time.
        # Taken per batch, so a step of the wall clock (NTP) shows from the next batch.
        offset_ns = time.time_ns() - time.monotonic_ns()
        lost = self._probe.lost_records() - self._lost_reported
        records = decode(raw)
        self._owners.prepare(record.ino for record in records)
        for record in records:
            segs = segs_of(record)
            if segs:
                rate = self._flows.rate(record.cookie, record.ts_ns, record.retrans, record.sent)
                self._writer.add(
                    to_event(
                        record,
                        segs,
                        (record.ts_ns + offset_ns) // 1_000_000,
                        format_rate(rate),
                        owner=self._owners.owner(record.cookie, record.ino, record.tgid),
                        lost=lost or None,
                    )
                )
                self._lost_reported += lost
                lost = 0
            if record.source == SOURCE_CLOSE:
                self._flows.forget(record.cookie)
                self._owners.forget(record.cookie)
        self._writer.flush()
        return self._ring.more()

    def drain(self) -> None:
        while self.pump():
            pass

    def run(self, duration_s: Optional[float] = None) -> Totals:
        """Until a stop signal, stdout closing, or ``duration_s`` seconds, which
        ends the stream exactly as SIGTERM would."""
        totals = Totals()
        deadline = None if duration_s is None else time.monotonic() + duration_s
        self._stop.interrupt_when(lambda: self._writer.blocked)
        poller = select.poll()
        poller.register(self._ring.fileno(), select.POLLIN)
        poller.register(self._stop.fd, select.POLLIN)
        # No events asked for: poll still reports POLLERR/POLLHUP/POLLNVAL.
        poller.register(self._out_fd, 0)
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
                self.drain()
            # Detach first, so the ring holds a final set of records, then deliver them.
            self._probe.detach()
            self.drain()
        except StdoutClosed:
            totals.stdout_closed = True
        except _Stop:
            pass
        finally:
            self._stop.interrupt_when(lambda: False)
            self._ring.close()
        totals.lines = self._writer.lines
        totals.lost = self._probe.lost_records()
        return totals
