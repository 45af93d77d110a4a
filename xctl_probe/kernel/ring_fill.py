"""How full the kernel's ring buffer is, read from its two positions.

The ring map's pages as the kernel lays them out for mmap (kernel/bpf/
ringbuf.c, the layout libbpf's reader maps too): the consumer's position at
offset 0, the producer's one page further, each an unsigned long that only
grows; what lies between them (records and their 8-byte headers, those
still being written included) is unread. A read-only mapping of those two
pages, beside the reader's own, reads them without touching the ring's
state, from any thread: a gauge, read when scraped, may be a moment stale.
"""

import mmap
import struct

_POSITION = struct.Struct("=Q" if struct.calcsize("P") == 8 else "=I")


class RingFill:
    def __init__(self, ring_map_fd: int, ring_bytes: int):
        self._page = mmap.PAGESIZE
        self._bytes = ring_bytes
        self._positions = mmap.mmap(ring_map_fd, 2 * self._page, mmap.MAP_SHARED,
                                    mmap.PROT_READ)

    def fraction(self) -> float:
        """Unread bytes over the ring's size, 0 to 1."""
        # The consumer first: the producer is never behind it, read later.
        consumer = _POSITION.unpack_from(self._positions, 0)[0]
        producer = _POSITION.unpack_from(self._positions, self._page)[0]
        return min(1.0, max(0, producer - consumer) / self._bytes)

    def close(self) -> None:
        self._positions.close()
