"""The probe in the running kernel: its object loaded, its programs attached,
its maps at hand; ``close()`` (or ``with``) removes it all.

Every way this can fail becomes a ProbeError whose message says what to do,
and nothing is left attached when it does. The steps each have a module:
preconditions.py (before anything is loaded), bpf_object.py (libbpf),
load_time_runs.py (what the kernel tells at load), ticks.py (HZ),
attachment.py, holders.py (the socket holders' iterator) and
lost_records.py.
"""

import time
from pathlib import Path
from typing import Dict, List, Optional, Set

from . import load_time_runs, preconditions, sock_helpers, ticks
from .attachment import Attachment, hooks, tracing_program_fds
from .bpf_object import BpfObject
from .drop_policy import SECTION as DROP_SECTION
from .drop_policy import DropPolicy
from .drop_tallies import TALLIES_MAP, DropTallies
from .flow_filter import SECTION as FILTER_SECTION
from .flow_filter import FlowFilter
from .holders import SocketHolderPasses
from .lost_records import LostRecords
from .objects import PROBE_OBJECT
from .preconditions import KERNEL_BTF

RING_MAP = "records"
# Room for about 9,000 records: a reader stalled for a second in a storm of
# that many retransmissions a second loses none.
DEFAULT_RING_BYTES = 1 << 20
LOST_MAP = "lost_records"
DROP_PROGRAM = "xp_kfree_skb"


class LoadedProbe:
    """The object loaded and attached; ``close()`` (or ``with``) removes it all."""

    def __init__(self, object_path: Path = PROBE_OBJECT, btf_path: Path = KERNEL_BTF,
                 ring_bytes: int = DEFAULT_RING_BYTES, attach: bool = True,
                 drops: Optional[DropPolicy] = DropPolicy(),
                 filters: Optional[FlowFilter] = None):
        """``btf_path``: the BTF the object's CO-RE relocations resolve
        against (bpf_object.py says why the kernel's own is named);
        ``drops``: which drops the drop program reports (by default every
        one); None leaves the program out; ``filters``: the flows every
        program reports (by default all)."""
        preconditions.require(object_path)
        self._obj: Optional[BpfObject] = None
        self._holders: Optional[SocketHolderPasses] = None
        self._tallies: Optional[DropTallies] = None
        self._attachment = Attachment()
        try:
            self.sock_helpers = sock_helpers.wanted()
            self._obj = _opened(Path(object_path), btf_path, ring_bytes, drops, filters,
                                self.sock_helpers)
            if self._obj.load(tolerated=sock_helpers.HELPERS) is not None:
                self._obj.close()
                self.sock_helpers = False
                self._obj = _opened(Path(object_path), btf_path, ring_bytes, drops, filters,
                                    False)
                self._obj.load()
            # Its tracing programs whether attached or not: a bench that
            # attaches none reads them at the cost the stream pays.
            self._lost = LostRecords(self.map_fd(LOST_MAP), tracing_program_fds(self._obj))
            self.err_layout = load_time_runs.err_layout(self._obj)
            self.hz, self.hz_source = ticks.kernel_hz(self.read_jiffies)
            self._holders = SocketHolderPasses(self._obj)
            self._tallies = None if drops is None else DropTallies(self.map_fd(TALLIES_MAP))
            if attach:
                self._attachment.attach(self._obj)
        except BaseException:
            self.close()
            raise

    @property
    def attached(self) -> List[str]:
        """The sections of the programs attached, in order."""
        return self._attachment.attached

    @property
    def hooks(self) -> List[str]:
        """The tracepoints the object's programs attach to, as category:name."""
        return hooks(self._obj)

    @property
    def layout(self) -> str:
        return load_time_runs.describe_layout(self.err_layout)

    @property
    def sockets(self) -> str:
        """Where the programs keep what they know of each socket."""
        return sock_helpers.describe(self.sock_helpers)

    def read_jiffies(self) -> ticks.Reading:
        return load_time_runs.read_jiffies(self._obj)

    def map_fd(self, name: str) -> int:
        return self._obj.map_fd(name)

    def lost_records(self) -> int:
        """Records the kernel could not give since load: those that found the
        ring buffer full, and the runs of the probe's programs it skipped."""
        return self._lost.read()

    def counted_drops(self) -> bytes:
        """Records, raw, of the drops of a flood the kernel only counted since
        the last call (drop_tallies.py); none without the drop program."""
        return b"" if self._tallies is None else self._tallies.records(time.monotonic_ns())

    def socket_holders(self, inodes: Set[int]) -> Optional[Dict[int, Set[int]]]:
        """{inode: pids holding it} for the socket inodes in ``inodes`` that
        are held, from one pass of the kernel's (kernel/holders.py); None if
        the kernel failed it."""
        return self._holders.holders(inodes)

    def detach(self) -> None:
        """Stops new records; what the ring buffer holds can still be read,
        and holders still be asked about."""
        self._attachment.detach()

    def close(self) -> None:
        self.detach()
        if self._holders is not None:
            self._holders.close()
            self._holders = None
        if self._obj is not None:
            self._obj.close()
            self._obj = None

    def __enter__(self) -> "LoadedProbe":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _opened(object_path: Path, btf_path: Path, ring_bytes: int, drops: Optional[DropPolicy],
            filters: Optional[FlowFilter], with_sock_helpers: bool) -> BpfObject:
    """The object opened and set up for load, with or without the socket
    helpers of tracing programs (sock_helpers.py)."""
    obj = BpfObject(object_path, btf_path)
    try:
        obj.size_ring(RING_MAP, ring_bytes)
        if drops is None:
            obj.leave_out(DROP_PROGRAM)
        else:
            obj.set_initial_value(DROP_SECTION, drops.packed())
        if filters is not None:
            obj.set_initial_value(FILTER_SECTION, filters.packed())
        obj.set_initial_value(sock_helpers.SECTION, sock_helpers.packed(with_sock_helpers))
        if with_sock_helpers:
            # Preallocated, the hash would hold its memory for nothing.
            obj.shrink_map(sock_helpers.HASH_MAP, 1)
    except BaseException:
        obj.close()
        raise
    return obj
