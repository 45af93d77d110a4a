"""What the kernel could not give of the probe's records, since load: those
that found the ring buffer full (counted by the BPF side in a map), and the
runs of its tracing programs the kernel skipped (``recursion_misses``, which
the kernel counts for each program: a program is not run again on a CPU where
it is already running, as when a softirq that fires its tracepoint interrupts
it). A skipped run counts as one record lost, though it may have had nothing
to report (a packet that is not TCP, a state change); its segments are not
lost, the socket's next line carries them (README, ``segs``).

Read once per batch of records: one map lookup and one bpf_obj_get_info_by_fd
per program (six system calls in all: about 3.5 µs on the build machine,
where a batch of a storm is thousands of records).
"""

from typing import List

from .binding import ffi, lib


class LostRecords:
    def __init__(self, ring_full_map_fd: int, program_fds: List[int]):
        self._map_fd = ring_full_map_fd
        self._key = ffi.new("uint32_t *", 0)
        self._value = ffi.new("uint64_t *")
        self._fds = ffi.new("int[]", program_fds)
        self._count = len(program_fds)
        self._ring_full = 0
        self._skipped = 0

    def read(self) -> int:
        """The total now. Both counters only grow: a reading that fails keeps
        the last one, so ``lost`` never goes back."""
        if lib.bpf_map_lookup_elem(self._map_fd, self._key, self._value) == 0:
            self._ring_full = self._value[0]
        if lib.xp_recursion_misses(self._fds, self._count, self._value) == 0:
            self._skipped = self._value[0]
        return self._ring_full + self._skipped
