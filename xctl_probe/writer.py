"""JSONL onto a file descriptor, one flushed write per batch of events.

xctl reads stdout line by line as it comes: nothing may sit in a buffer, so
each batch goes out with os.write, whatever Python's own buffering would do
(PYTHONUNBUFFERED is not set under xctl). One Encoder and one bytearray are
reused for every line.
"""

import os

import msgspec


class StdoutClosed(Exception):
    """The reader went away (EPIPE): xctl stopped, so the probe should too."""


class JsonlWriter:
    def __init__(self, fd: int = 1):
        self._fd = fd
        self._encoder = msgspec.json.Encoder()
        self._buffer = bytearray()
        self.lines = 0
        # True while a write may block on a slow reader: a stop signal must
        # then interrupt it instead of waiting for the reader.
        self.blocked = False

    def add(self, event) -> None:
        self._encoder.encode_into(event, self._buffer, -1)
        self._buffer.extend(b"\n")
        self.lines += 1

    def flush(self) -> None:
        if not self._buffer:
            return
        view = memoryview(self._buffer)
        written = 0
        self.blocked = True
        try:
            while written < len(view):
                written += os.write(self._fd, view[written:])
        except BrokenPipeError:
            raise StdoutClosed from None
        finally:
            self.blocked = False
            view.release()
        self._buffer.clear()
