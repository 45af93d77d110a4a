"""A dropped packet's record into its line.

Drops take a path of their own beside the retransmissions' (lines.py),
cached the same way per flow (its namespace and four-tuple, counted over the
window; a drop that is no loss, reported only with --drops all, counts for
nothing and its value is 0, so network_stall never fires on it): the owner
comes from the socket the kernel named or, failing that,
from the socket of its four-tuple in its namespace, asked once per flow like
a retransmission's and on every drop while the flow has none (a drop has no
cookie for the owner to be asked again a batch later by). A record of the
drops the kernel only counted in a flood (kernel/drop_tallies.py) names no
peer and no owner: its line has the count, keyed by the local side alone.
"""

from typing import Optional

import msgspec

from ..context.jobs import CgroupJobs
from ..context.owners import Owners
from ..context.sockets import SocketsByTuple
from ..kernel.decoder import FLAG_COUNTED, FLAG_NOT_LOSS, RECORD_STRUCT, fields_struct, record_at
from ..kernel.drop_reasons import DropReasons
from ..meaning.drop_counts import DropFlow, drop_table
from ..meaning.event import TransportDrop, as_drop, flow_event
from ..meaning.table import slice_of
from .flow_events import FlowEvents

# What a drop's line takes beyond the fields every record's line reads.
_DROP = fields_struct(("ino", "netns", "skb_segs", "flags", "sport", "dport", "saddr", "daddr",
                       "reason"))


class _DropFlowLines(DropFlow):
    """A flow's drop counts and what its lines share (None until its first line)."""

    __slots__ = ("shared",)

    def __init__(self):
        super().__init__()
        self.shared: Optional[FlowEvents] = None


class DropLines:
    def __init__(self, owners: Owners, jobs: CgroupJobs, reasons: Optional[DropReasons],
                 window_ns: int):
        self._owners = owners
        self._jobs = jobs
        self._reasons = reasons
        self._sockets = SocketsByTuple()
        self._window = window_ns
        self._slice = slice_of(window_ns)
        self._flows = drop_table(window_ns)

    def line(self, raw, i: int, ts_ns: int, tgid: int, state: int, now: float,
             offset_ns: int) -> TransportDrop:
        """Record ``i`` of the batch ``raw``, a dropped packet, as its line."""
        ino, netns, packets, flags, sport, dport, saddr, daddr, reason = _DROP.unpack_from(
            raw, i * RECORD_STRUCT.size)
        loss = not flags & FLAG_NOT_LOSS
        key = (netns, saddr, daddr, sport, dport)
        flows = self._flows
        flows.forget_idle(ts_ns)
        flow = flows.get(key)
        if flow is None:
            flow = flows.add(key, _DropFlowLines())
        total = flow.add(ts_ns, packets if loss else 0, self._window, self._slice)
        shared = flow.shared
        counted = flags & FLAG_COUNTED
        if counted:
            if shared is None:
                shared = flow.shared = FlowEvents(flow_event(record_at(raw, i)), None, 0, now)
        elif (shared is None or shared.owner is None or shared.tgid != tgid
                or shared.recheck_at <= now or (ino and ino != shared.ino)):
            shared = flow.shared = self._share(shared, raw, i, key, ino, tgid, now)
        facts = (state, reason, loss)
        base = shared.by_facts.get(facts)
        if base is None:
            name = (self._reasons.name(reason) if self._reasons is not None
                    else f"UNKNOWN_{reason}")
            base = shared.keep(facts, as_drop(shared.event, state, name, reason, loss))
        return msgspec.structs.replace(base, ts=(ts_ns + offset_ns) // 1_000_000,
                                       value=str(total) if loss else "0", segs=packets,
                                       count=packets if counted and packets > 1 else None)

    def _share(self, shared: Optional[FlowEvents], raw, i: int, key, ino: int, tgid: int,
               now: float) -> FlowEvents:
        record = record_at(raw, i)
        found = ino or self._sockets.inode(record.netns, record.saddr, record.sport,
                                           record.daddr, record.dport)
        if found:
            self._owners.prepare((found,))
        # Keyed by the flow, an owner found once stays with it after its socket
        # has lost its file (closed, its last packets still in flight).
        owner = self._owners.owner(key, found, tgid)
        if shared is not None and shared.owner == owner:
            return shared.asked(tgid, now, ino)
        return FlowEvents(flow_event(record, owner, self._jobs.job(record.cgroup_id)), owner,
                          tgid, now, ino)
