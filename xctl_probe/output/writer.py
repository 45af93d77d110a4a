"""JSONL onto a file descriptor, from a thread of its own.

xctl reads stdout into a queue of 1000 lines and forwards each line inline:
when it falls behind, a write to stdout blocks. The writing therefore happens
on its own thread (a blocking os.write releases the GIL), so the lines keep
being made, and the kernel's ring buffer drained, whatever the reader does.

The reader is behind once a write has waited for it more than BEHIND_S,
and stays behind until the writer has written everything handed over.
Lines handed over before that go out as they are, one line per record,
encoded at once on the caller's thread (the line thread): a storm's batch is
a few thousand lines, still in the CPU's cache there, and the writer thread
is left with only the system call (encoding them later, from a backlog of
many batches, cost a sixth more per line). Lines handed over while it is behind wait in
PendingLines, merged per flow, and are encoded when they go out. So with a
reader that keeps up nothing is merged, and with one that stalls the line
rate drops to what it takes, memory stays bounded, and Σsegs stays exact.
(Behind only while a write waits was not enough: each write of a stalled
reader's backlog took lines unmerged in its first BEHIND_S, and the next
backlog grew from them.)

Every line carries ``lost`` once anything was: the records the kernel could
not give (a full ring, a run it skipped) plus the lines the pending bound
refused, cumulative since start.

JSONL is the writer's form by default (JsonLines); a person's terminal gets a
table's rows instead (terminal/table.py), with the same thread and the same
merging behind a terminal that cannot keep up. A form may leave its work to
the writer thread (``late``): then that work counts as waiting for the reader,
so a form slower than the lines come makes them merge too, and never slows
the line thread.

With an interval (``--interval``: rollups, for an xctl that forwards every
line to its hub) every line waits in PendingLines, merged per flow, and the
writer thread writes what waits once per interval, on a fixed grid from the
start, and at close: at most one line per flow (and drop reason, and loss
or not) per interval, Σsegs exact, the same bound and the same ``lost``.
Without one, nothing of this path runs.

xctl reads stdout line by line as it comes: nothing may sit in a buffer, so
each batch goes out with os.write, whatever Python's own buffering would do.
On a pipe (how xctl reads it) each write is whole lines of at most PIPE_BUF
bytes, which the kernel writes at once or not at all: a probe that exits
while its reader is stalled leaves no partial line behind.
"""

import os
import select
import signal
import stat
import threading
import time
from typing import Any, List, Optional, Protocol, Tuple

import msgspec

from ..meaning.event import TransportDrop
from .pending import PendingLines

# A write to a reader that keeps up takes microseconds.
BEHIND_S = 0.02


class StdoutClosed(Exception):
    """The reader went away (EPIPE): xctl stopped, so the probe should too."""


class LineForm(Protocol):
    """How lines become bytes, with ``lost``, the records lost so far."""

    def early(self, lines: List[TransportDrop], lost: int) -> Any:
        """On the caller's thread (the line thread), as a batch is handed over."""

    def merged(self, lines: List[TransportDrop], lost: int) -> Any:
        """On the writer thread: lines that waited, merged per flow."""

    def late(self, prepared: Any) -> bytes:
        """On the writer thread, just before the write: what early or merged gave, as bytes."""


class JsonLines:
    """xctl's JSONL: a batch is encoded at once, on the caller's thread."""

    def __init__(self):
        # One encoder per thread: the caller's for lines as they come, the
        # writer's for merged lines.
        self._encoder = msgspec.json.Encoder()
        self._merged_encoder = msgspec.json.Encoder()

    def early(self, lines: List[TransportDrop], lost: int) -> bytes:
        return _encoded(self._encoder, lines, lost)

    def merged(self, lines: List[TransportDrop], lost: int) -> bytes:
        return _encoded(self._merged_encoder, lines, lost)

    def late(self, prepared: bytes) -> bytes:
        return prepared


class LineWriter:
    def __init__(self, fd: int = 1, pending: PendingLines = None,
                 form: Optional[LineForm] = None, interval_s: Optional[float] = None):
        """``interval_s``: rollups, at most one line per flow that often (None: none)."""
        self._fd = fd
        self._form = form if form is not None else JsonLines()
        mode = os.fstat(fd).st_mode
        # xctl's lines, whole on a pipe; a table's rows are for a person.
        self._whole_lines = isinstance(self._form, JsonLines) and (
            stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode))
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._written = threading.Condition(self._lock)
        # Batches as the form's early() gave them, each with its count of lines.
        self._ready: List[Tuple[Any, int]] = []
        self._ready_lines = 0
        self._pending = pending if pending is not None else PendingLines()
        self._writing_since = 0.0
        self._behind = False
        self._closing = False
        self._lost_in_kernel = 0
        self._taken = 0
        self.lines = 0
        self.closed = False
        self._interval = interval_s
        # The end of the current interval: the next write of what waits.
        self._due = time.monotonic() + (interval_s or 0.0)
        self._thread = threading.Thread(target=self._run, name="xctl-probe-writer", daemon=True)
        self._thread.start()

    @property
    def lost(self) -> int:
        """Records lost so far, in the kernel or to the pending bound."""
        return self._lost_in_kernel + self._pending.dropped

    def put(self, lines: List[TransportDrop], lost_in_kernel: int) -> None:
        """Hands over one batch; ``lost_in_kernel`` is the kernel's count of
        records it could not give."""
        with self._lock:
            self._lost_in_kernel = lost_in_kernel
            if not lines:
                return
            since = self._writing_since
            if self._interval or self._behind or (since and time.monotonic() - since > BEHIND_S):
                self._behind = True
                add = self._pending.add
                for line in lines:
                    add(line)
                if not self._interval:  # with one, the writer waits for the interval's end
                    self._wake.notify()
                return
            lost = self.lost
        # Outside the lock: the writer thread need not wait for the encoding.
        # Only this thread adds lines, so the batch's place in the order holds.
        data = self._form.early(lines, lost)
        with self._lock:
            self._ready.append((data, len(lines)))
            self._ready_lines += len(lines)
            self._wake.notify()

    def close(self, timeout_s: float) -> int:
        """Writes what is waiting, for at most ``timeout_s``; the lines left unwritten."""
        with self._lock:
            self._closing = True
            self._wake.notify()
        self._thread.join(timeout_s)
        with self._lock:
            return self._taken - self.lines + self._ready_lines + len(self._pending)

    def wait_written(self, timeout_s: float) -> bool:
        """Until every line handed over is written (or ``timeout_s``)."""
        with self._lock:
            return self._written.wait_for(
                lambda: self.closed or not (self._ready or len(self._pending)
                                            or self._taken > self.lines), timeout_s)

    def _next(self) -> List[Tuple[Any, int]]:
        """What is to be written next, as the form prepared it, each with its
        count of lines; nothing once closing and all is written."""
        if self._interval:
            return self._next_interval()
        with self._lock:
            while not (self._ready or len(self._pending)):
                self._behind = False  # all written: the reader has caught up
                if self._closing or self.closed:
                    return []
                self._wake.wait()
            batches, self._ready = self._ready, []
            merged = self._pending.take()
            lost = self.lost
            self._taken += self._ready_lines + len(merged)
            self._ready_lines = 0
        if merged:
            batches.append((self._form.merged(merged, lost), len(merged)))
        return batches

    def _next_interval(self) -> List[Tuple[Any, int]]:
        """With an interval: what waited, merged, at the end of the next
        interval that has any (or at once when closing, all that waits)."""
        interval = self._interval
        with self._lock:
            while True:
                closing = self._wake.wait_for(lambda: self._closing or self.closed,
                                              max(0.0, self._due - time.monotonic()))
                now = time.monotonic()
                if not closing and now < self._due:
                    continue
                if now >= self._due:
                    # The next end on the grid after now: a write that took longer
                    # than an interval skips ends rather than writing twice in one.
                    self._due += interval * (1 + (now - self._due) // interval)
                if closing or len(self._pending):
                    break
            merged = self._pending.take()
            lost = self.lost
            self._taken += len(merged)
        return [(self._form.merged(merged, lost), len(merged))] if merged else []

    def _run(self) -> None:
        # Stop signals belong to the main thread: none may interrupt a write here.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        while True:
            batches = self._next()
            if not batches:
                return
            try:
                for prepared, count in batches:
                    self._writing_since = time.monotonic()
                    data = self._form.late(prepared)
                    if self._whole_lines:
                        self._write_whole_lines(data)
                    else:
                        self._write(memoryview(data), count)
                    self._writing_since = 0.0
            except OSError:  # EPIPE above all: the reader is gone, and so is every later line
                with self._lock:
                    self.closed = True
                    self._written.notify_all()
                return

    def _write_whole_lines(self, data: bytes) -> None:
        view = memoryview(data)
        start = 0
        while start < len(data):
            end = data.rfind(b"\n", start, start + select.PIPE_BUF) + 1
            if end <= start:  # one line longer than PIPE_BUF cannot go at once
                end = data.index(b"\n", start) + 1
            self._write(view[start:end], data.count(b"\n", start, end))
            start = end

    def _write(self, view: memoryview, lines: int) -> None:
        written = 0
        # Since the form's late() began, for the first write of a batch.
        self._writing_since = self._writing_since or time.monotonic()
        try:
            while written < len(view):
                written += os.write(self._fd, view[written:])
        finally:
            self._writing_since = 0.0
        with self._lock:
            self.lines += lines
            self._written.notify_all()


def _encoded(encoder: msgspec.json.Encoder, lines: List[TransportDrop], lost: int) -> bytes:
    """``lines`` as JSONL, each saying ``lost`` once anything was."""
    if lost:
        lines = [msgspec.structs.replace(line, lost=lost) for line in lines]
    return encoder.encode_lines(lines)
