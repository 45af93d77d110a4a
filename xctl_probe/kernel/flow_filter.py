"""Which flows the programs report at all (--port, --family, --netns, and
no socket's records when only drops are asked for): told
to the object before it is loaded, into its read-only section
.rodata.filter (struct xp_filter in bpf/record.h), which every program that
reserves a record reads first (bpf/filter.bpf.h). A flow filtered out costs
no ring record, no drop tally, and nothing in user space."""

from dataclasses import dataclass
from typing import FrozenSet, Optional

from .binding import ffi, lib

SECTION = ".rodata.filter"
MAX_PORTS = lib.XP_FILTER_PORTS
MAX_NETNS = lib.XP_FILTER_NETNS
_FAMILIES = {"ipv4": lib.XP_FILTER_IPV4, "ipv6": lib.XP_FILTER_IPV6}


@dataclass(frozen=True)
class FlowFilter:
    """Each empty: no filter on it. ``families``: "ipv4", "ipv6";
    ``drops_only``: the retransmission programs reserve no record."""

    ports: FrozenSet[int] = frozenset()
    netns: FrozenSet[int] = frozenset()
    families: FrozenSet[str] = frozenset()
    drops_only: bool = False

    def packed(self) -> bytes:
        if len(self.ports) > MAX_PORTS or len(self.netns) > MAX_NETNS:
            raise ValueError(f"at most {MAX_PORTS} ports and {MAX_NETNS} namespaces")
        flow = ffi.new("struct xp_filter *")
        for i, port in enumerate(sorted(self.ports)):
            flow.ports[i] = port
        for i, inode in enumerate(sorted(self.netns)):
            flow.netns[i] = inode
        flow.nports = len(self.ports)
        flow.nnetns = len(self.netns)
        flow.drops_only = self.drops_only
        for family in self.families:
            flow.families |= _FAMILIES[family]
        return bytes(ffi.buffer(flow))


def flow_filter(ports: FrozenSet[int], netns: FrozenSet[int], families: FrozenSet[str],
                drops_only: bool = False) -> Optional[FlowFilter]:
    """The filter the object is to be loaded with; None, every flow, when none is asked."""
    if not (ports or netns or families or drops_only):
        return None
    return FlowFilter(ports, netns, families, drops_only)
