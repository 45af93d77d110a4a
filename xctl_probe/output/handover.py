"""Batches of raw records, handed from the thread that drains the kernel's
ring (drain.py) to the thread that makes lines of them (line_thread.py), in
ring order.

Bounded in bytes, not batches: a storm's batches are full ones, a quiet
node's hold a record or two. The drain asks for room before it copies a
batch out of the ring (so a batch can take the queue past the bound by at
most itself); without room it leaves the records in the ring, where the
kernel counts those it can no longer queue.
"""

import collections
import threading
from typing import Deque, Optional

from ..kernel.ringbuf import RECORD_SIZE

# About twenty times the default ring (1 MiB: some 6,500 records), 20 MB:
# seconds of a heavy storm while a /proc read blocks the lines.
BOUND_RECORDS = 1 << 17


class Batches:
    def __init__(self, bound_records: int = BOUND_RECORDS):
        self._bound = bound_records * RECORD_SIZE
        self._queue: Deque[bytes] = collections.deque()
        self._bytes = 0
        # Bytes of the batch being made into lines, taken from the queue.
        self._making = 0
        self._closed = False
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def room(self) -> bool:
        return self._bytes < self._bound

    def wait_room(self, timeout_s: float) -> bool:
        """Until the queue has room (or ``timeout_s``); whether it has."""
        with self._lock:
            return self._changed.wait_for(self.room, timeout_s)

    def put(self, batch: bytes) -> None:
        with self._lock:
            self._queue.append(batch)
            self._bytes += len(batch)
            self._changed.notify_all()

    def peek(self) -> Optional[bytes]:
        """The batch that will be taken next, left in the queue; None if none waits."""
        with self._lock:
            return self._queue[0] if self._queue else None

    def take(self) -> Optional[bytes]:
        """The oldest batch, once there is one; the previous one taken is done
        with. None once closed and empty."""
        with self._lock:
            self._making = 0
            self._changed.notify_all()
            self._changed.wait_for(lambda: self._queue or self._closed)
            if not self._queue:
                return None
            batch = self._queue.popleft()
            self._bytes -= len(batch)
            self._making = len(batch)
            self._changed.notify_all()
            return batch

    def close(self) -> None:
        """No more batches: take() returns None once the queue is empty."""
        with self._lock:
            self._closed = True
            self._changed.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Until every batch put is done with (or ``timeout_s``)."""
        with self._lock:
            return self._changed.wait_for(lambda: not (self._queue or self._making), timeout_s)

    def abandon(self) -> int:
        """Empties the queue; the records it held, with those of the batch
        being made, which may never be lines."""
        with self._lock:
            records = (self._bytes + self._making) // RECORD_SIZE
            self._queue.clear()
            self._bytes = 0
            self._changed.notify_all()
            return records
