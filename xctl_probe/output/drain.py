"""The thread that drains the kernel's ring: it polls, and copies batches out.

It does nothing else: no /proc, no owner, no line. Those can be slow (a
process in D state, a huge /proc/net/tcp), and a ring left undrained fills
and loses records. So the main thread runs this loop, and hands each batch
over (handover.py) to the thread that makes lines (line_thread.py), which
may wait on /proc as long as it must. This module imports nothing of the
probe's but the ring reader and the hand-over, and tests/unit/test_drain.py
holds it to that.

It sleeps in poll() on the ring, on a self-pipe that SIGTERM and SIGINT
write to (StopSignals), on stdout itself, which reports an error when its
reader (xctl) goes away even while no event is due, and on a pipe the line
thread writes to when it wants the records that came after its batch
(``ahead``). Every TALLIES_S it also hands over the drops of a flood the
kernel only counted. The BPF side wakes it only once a share of the ring is waiting
(waking costs the kernel more than the record), so it also looks every
POLL_MS: a lone record reaches the line thread within that.

When lines fall so far behind that the hand-over is full, it copies no
more and the ring fills: the kernel then counts each record it cannot queue
(``lost``), and the socket's next record carries that record's segments, so
Σsegs stays exact, which dropping batches here would not keep.
"""

import math
import os
import select
import threading
import time
from typing import Callable, Optional

from ..kernel.ringbuf import RECORD_SIZE, RingReader
from .handover import Batches

POLL_MS = 200
# How often the drops of a flood the kernel only counted (kernel/drop_tallies.py)
# are handed over, as records.
TALLIES_S = 1.0
# How long the line thread waits for the records after its batch, which the
# drain copies at once unless it is stopping.
AHEAD_WAIT_S = 0.2


class Drain:
    def __init__(self, ring_map_fd: int, batches: Batches, counted: Callable[[], bytes]):
        """``counted()``: records of the drops the kernel only counted since
        its last call (LoadedProbe.counted_drops: maps, no /proc)."""
        self._ring = RingReader(ring_map_fd)
        self._batches = batches
        self._counted = counted
        self._wanted_r, self._wanted_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._lock = threading.Lock()
        self._passed = threading.Condition(self._lock)
        # Passes started and the last one finished, each by its number: a
        # pass that started after a request copied what the ring held then.
        self._started = 0
        self._finished = 0
        self._polling = False
        # Records copied out of the ring so far (not the drops only counted).
        self.records = 0

    def run(self, stop, out_fd: int, deadline: Optional[float],
            ended: Callable[[], bool]) -> bool:
        """Drains the ring as records come, until a stop signal, the
        monotonic ``deadline``, or ``ended()``; True if stdout's reader went away."""
        poller = select.poll()
        poller.register(self._ring.fileno(), select.POLLIN)
        poller.register(stop.fd, select.POLLIN)
        poller.register(self._wanted_r, select.POLLIN)
        # No events asked for: poll still reports POLLERR/POLLHUP/POLLNVAL.
        poller.register(out_fd, 0)
        self._set_polling(True)
        counted_at = time.monotonic() + TALLIES_S
        try:
            while not (stop.requested or ended()):
                timeout_ms = POLL_MS
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    timeout_ms = min(POLL_MS, math.ceil(left * 1000))
                if not self._batches.wait_room(timeout_ms / 1000):
                    continue
                for fd, _ in poller.poll(timeout_ms):
                    if fd == out_fd:
                        return True
                    if fd == self._wanted_r:
                        os.read(self._wanted_r, 4096)
                self.drain()
                if time.monotonic() >= counted_at:
                    counted_at = time.monotonic() + TALLIES_S
                    self.count_drops()
            return False
        finally:
            self._set_polling(False)

    def drain(self) -> bool:
        """Copies what the ring holds into the hand-over while it has room;
        True if it took it all."""
        with self._lock:
            self._started += 1
            number = self._started
        try:
            while self._batches.room():
                raw = self._ring.read()
                if raw:
                    self.records += len(raw) // RECORD_SIZE
                    self._batches.put(bytes(raw))
                if not self._ring.more():
                    return True
            return False
        finally:
            with self._lock:
                self._finished = number
                self._passed.notify_all()

    def count_drops(self) -> None:
        """Hands over the records of the drops the kernel only counted."""
        raw = self._counted()
        if raw:
            self._batches.put(raw)

    def drain_all(self, timeout_s: float) -> bool:
        """Copies everything the ring holds, waiting for room as lines are
        made, for at most ``timeout_s``; True if it took it all."""
        deadline = time.monotonic() + timeout_s
        while not self.drain():
            if not self._batches.wait_room(deadline - time.monotonic()):
                return False
        return True

    def ahead(self) -> bytes:
        """For the line thread: the records after the batch it is making lines
        of. The next batch handed over, else what the ring holds now, copied
        at its request while the loop runs; empty if none."""
        waiting = self._batches.peek()
        if waiting is not None:
            return waiting
        with self._lock:
            if not self._polling:
                return b""
            asked = self._started
        try:
            os.write(self._wanted_w, b"\0")
        except BlockingIOError:  # requests already waiting wake it as well
            pass
        with self._lock:
            self._passed.wait_for(lambda: self._finished > asked or not self._polling,
                                  AHEAD_WAIT_S)
        return self._batches.peek() or b""

    def count_rest(self) -> int:
        """Consumes what the ring still holds, only counting the records."""
        return self._ring.count_all()

    def _set_polling(self, polling: bool) -> None:
        with self._lock:
            self._polling = polling
            self._passed.notify_all()

    def close(self) -> None:
        self._ring.close()
        os.close(self._wanted_r)
        os.close(self._wanted_w)
