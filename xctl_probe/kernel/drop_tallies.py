"""The drops of a flood the kernel only counted, as records.

Past a key's records of the second (bpf/record.h: a local address and port,
a reason, a state), the drop program only adds to the key's tally. Read
every second, each key with drops since the last read becomes one record of
the ring's own layout, which the line path takes like any drop: skb_segs is
their number, FLAG_COUNTED says the record stands for a count, and daddr
and dport are 0, as the drops may come from many peers. Every drop is in a
record of the ring or in a tally, never both, so the two add up to the
drops.

A key without a drop for IDLE_NS is deleted, so the map keeps room for new
keys. The first drop of a key's second takes a record when all keys' budget
has one left, so a delete can touch a count only if a drop of that key,
after a minute without one, comes in the microseconds between the read and
the delete while all keys have used up their second's records: that count
is then lost, or lands in the key that reuses the freed element.
"""

import os
from typing import Dict

from ..errors import ProbeError
from .binding import ffi, lib
from .decoder import FLAG_COUNTED, FLAG_NOT_LOSS, SOURCE_DROP

TALLIES_MAP = "drop_tallies"
IDLE_NS = 60_000_000_000


class DropTallies:
    def __init__(self, map_fd: int):
        self._fd = map_fd
        self._room = lib.XP_DROP_KEYS
        self._keys = ffi.new("struct xp_drop_key[]", self._room)
        self._tallies = ffi.new("struct xp_drop_tally[]", self._room)
        # {key, raw: its count at the last read}
        self._read: Dict[bytes, int] = {}

    def records(self, now_ns: int) -> bytes:
        """A record for each key with drops counted since the last read, raw,
        time-stamped ``now_ns`` (CLOCK_MONOTONIC, as the kernel's)."""
        found = lib.xp_drop_tallies(self._fd, self._keys, self._tallies, self._room)
        if found < 0:
            raise ProbeError(f"reading the drop tallies failed: {os.strerror(-found)}")
        records = []
        for i in range(found):
            key, tally = self._keys[i], self._tallies[i]
            name = bytes(ffi.buffer(ffi.addressof(self._keys, i)))
            counted = tally.counted - self._read.get(name, 0)
            if counted:
                self._read[name] = tally.counted
                records.append(_record(key, counted, now_ns))
            elif now_ns - tally.window.start_ns > IDLE_NS:
                lib.bpf_map_delete_elem(self._fd, ffi.addressof(self._keys, i))
                self._read.pop(name, None)
        return b"".join(records)


def _record(key, counted: int, now_ns: int) -> bytes:
    record = ffi.new("struct xp_record *")
    record.ts_ns = now_ns
    record.netns = key.netns
    record.family = key.family
    ffi.memmove(record.saddr, key.laddr, len(record.saddr))
    record.sport = key.lport
    record.reason = key.reason
    record.state = key.state
    record.source = SOURCE_DROP
    record.skb_segs = counted
    record.flags = FLAG_COUNTED | (FLAG_NOT_LOSS if key.not_loss else 0)
    return bytes(ffi.buffer(record))
