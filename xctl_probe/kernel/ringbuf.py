"""Drains the BPF ring buffer in batches of raw records.

The C side of the binding copies each record into one contiguous batch, so
Python pays per batch, not per record. The ring's epoll descriptor is exposed
so the caller can wait on it together with its own descriptors.
"""

import errno
import os

from ..errors import BadInstall, KernelUnsupported, ProbeError
from .binding import ffi, lib

RECORD_SIZE = ffi.sizeof("struct xp_record")


class RingReader:
    def __init__(self, ring_map_fd: int, batch_records: int = 4096):
        self._batch = lib.xp_batch_new(ring_map_fd, batch_records)
        if self._batch == ffi.NULL:
            raise KernelUnsupported(f"cannot map the BPF ring buffer: {os.strerror(ffi.errno)}")
        self._buffer = ffi.buffer(lib.xp_batch_data(self._batch), batch_records * RECORD_SIZE)

    def fileno(self) -> int:
        return lib.xp_batch_epoll_fd(self._batch)

    def read(self) -> memoryview:
        """The records the ring holds now, at most one batch, as raw bytes.

        The view is valid until the next call; ``more()`` tells whether the
        ring may still hold records because the batch filled up.
        """
        count = lib.xp_batch_fill(self._batch)
        if count == -errno.EPROTO:
            raise BadInstall(
                "the BPF object and the binding disagree on the record size; "
                "reinstall the package (make install)"
            )
        if count < 0:
            raise ProbeError(f"reading the BPF ring buffer failed: {os.strerror(-count)}")
        return memoryview(self._buffer)[: count * RECORD_SIZE]

    def count_all(self) -> int:
        """Consumes every record the ring holds, in C, only counting them."""
        count = lib.xp_batch_count_all(self._batch)
        if count < 0:
            raise ProbeError(f"reading the BPF ring buffer failed: {os.strerror(-count)}")
        return count

    def more(self) -> bool:
        return bool(lib.xp_batch_more(self._batch))

    def close(self) -> None:
        if self._batch != ffi.NULL:
            lib.xp_batch_free(self._batch)
            self._batch = ffi.NULL
