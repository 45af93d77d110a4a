"""Raw records into event lines: segments, owner, rate, event.

This is the per-record path, the one a retransmission storm runs through
hundreds of thousands of times a second, so it does per record only what
changes per record. Each record is unpacked into a plain tuple of the fields
that change (decoder.fields_struct, from the one layout definition), and
what a flow's lines share (addresses, entity, owner: flow_events) is made
once per flow, from the full record (decoder.Record), the first time it
retransmits: each line is then that shared event with the record's own
fields replaced, and its state and kind are looked up by the fields they are
derived from. The loop keeps to the common case; what is rare (a new flow,
a sample, asking the owner, a failed retransmission) is a call away.

A dropped packet's record takes a path of its own (drop_lines).
"""

import time
from typing import Callable, Dict, List, Optional, Tuple

import msgspec

from ..context.jobs import CgroupJobs
from ..context.owners import Owners
from ..kernel.decoder import FLAG_HISTORY, SOURCE_CLOSE, SOURCE_DROP, fields_struct, record_at
from ..kernel.drop_reasons import DropReasons
from ..meaning.accounting import segs as segs_of
from ..meaning.counters import U32_MASK
from ..meaning.event import (TCP_SYN_SENT, TransportDrop, err_name, flow_event, kind, state_name,
                             timers)
from ..meaning.flows import RATE_TEXT, Flow, rate_table, rate_value
from ..meaning.table import slice_of
from .drop_lines import DropLines
from .flow_events import FlowEvents

# Layout order: the loop below unpacks each tuple in this order.
HOT_FIELDS = ("ts_ns", "cookie", "retrans", "prev_retrans", "sent", "tgid", "srtt_us", "err",
              "flags", "tcp_flags", "state", "source", "ca_state", "pending", "rto", "backoff",
              "ack_age")
_HOT = fields_struct(HOT_FIELDS)
_OWNER_FIELDS = fields_struct(("cookie", "ino", "source", "owner_tgid", "owner_comm"))

# (state, tcp_flags, ca_state, flags, pending, source): what a retransmission's
# state and kind derive from.
_Facts = Tuple[int, int, int, int, int, int]
# Reads the records that came after a batch: the next batch, raw.
ReadAhead = Callable[[], bytes]


def _nothing_ahead() -> bytes:
    return b""


class _FlowLines(Flow):
    """A flow's rate samples and what its lines share (None until its first line)."""

    __slots__ = ("shared",)

    def __init__(self):
        super().__init__()
        self.shared: Optional[FlowEvents] = None


class LineMaker:
    def __init__(self, owners: Owners, window_s: float, reasons: Optional[DropReasons] = None,
                 hz: Optional[int] = None):
        window_ns = int(window_s * 1e9)
        jobs = CgroupJobs()
        self._owners = owners
        self._jobs = jobs
        self._hz = hz
        self._window = window_ns
        self._slice = slice_of(window_ns)
        self._flows = rate_table(window_ns)
        self._drops = DropLines(owners, jobs, reasons, window_ns)
        self._prepared = False
        # {cookie: (tgid, comm)}: the first owner the kernel remembered for
        # the socket in the batch (_prepare).
        self._remembered: Dict[int, Tuple[int, bytes]] = {}
        self._ahead: ReadAhead = _nothing_ahead

    def lines(self, raw, offset_ns: int, ahead: ReadAhead = _nothing_ahead
              ) -> List[TransportDrop]:
        """The lines for a batch of raw records, in ring order. ``offset_ns``
        turns the kernel's monotonic clock into wall-clock time. ``ahead()``
        reads the records that came after the batch (the next batch), for
        what they say of owners (_prepare)."""
        flows, drop_line, sample, hz = self._flows, self._drops.line, self._sample, self._hz
        flow_of, slice_ns, rate_text = flows.get, self._slice, RATE_TEXT
        replace, now = msgspec.structs.replace, time.monotonic()
        self._prepared = False
        self._remembered = {}
        self._ahead = ahead
        lines: List[TransportDrop] = []
        add_line = lines.append
        for i, (ts_ns, cookie, retrans, prev_retrans, sent, tgid, srtt_us, err, flags, tcp_flags,
                state, source, ca_state, pending, rto, backoff, ack_age
                ) in enumerate(_HOT.iter_unpack(raw)):
            if source == SOURCE_DROP:
                add_line(drop_line(raw, i, ts_ns, tgid, state, now, offset_ns))
                continue
            # accounting.segs, inline for its common case like the rate and the timers
            # below: this loop is where a storm's time goes (tests/unit/test_inline.py).
            if flags & FLAG_HISTORY and retrans >= prev_retrans:
                segs = retrans - prev_retrans
            else:
                segs = segs_of(record_at(raw, i))
            if segs:
                flow = flow_of(cookie)
                if flow is None or ts_ns - flow.sampled_at >= slice_ns:
                    flow = sample(cookie, flow, ts_ns, retrans, sent)
                shared = flow.shared
                if shared is None or shared.tgid != tgid or shared.recheck_at <= now:
                    shared = self._share(flow, raw, i, tgid, now)
                facts = (state, tcp_flags, ca_state, flags, pending, source)
                base = shared.by_facts.get(facts) or _described(shared, facts)
                # counters.since, then flows.rate_value:
                d_retrans = (retrans - flow.base_retrans) & U32_MASK
                d_sent = (sent - flow.base_sent) & U32_MASK
                # event.timers (event.jiffies_ms):
                if rto and hz and state != TCP_SYN_SENT:
                    rto_ms = rto * 1000 // hz
                    stalled_ms = ack_age * 1000 // hz
                else:
                    rto_ms, backoff, stalled_ms = timers(rto, backoff, ack_age, state, hz)
                line = replace(base, ts=(ts_ns + offset_ns) // 1_000_000,
                               value=rate_text[(d_retrans * 20000 + d_sent) // (2 * d_sent)]
                               if d_sent > d_retrans else rate_value(d_retrans, d_sent),
                               segs=segs, rtt_us=srtt_us or None, rto_ms=rto_ms,
                               backoff=backoff, stalled_ms=stalled_ms)
                add_line(_failed(line, err) if err else line)
            if source == SOURCE_CLOSE:
                self._closed(cookie)
        if lines:
            flows.forget_idle(ts_ns)
        return lines

    def _sample(self, cookie: int, flow: Optional[_FlowLines], ts_ns: int, retrans: int,
                sent: int) -> _FlowLines:
        """``flow`` (a new one for ``cookie`` if None) with a sample taken at ``ts_ns``."""
        if flow is None:
            flow = self._flows.add(cookie, _FlowLines())
        flow.sample(ts_ns, retrans, sent, self._window)
        return flow

    def _closed(self, cookie: int) -> None:
        """Forgets the flow of socket ``cookie``, destroyed: the kernel never reuses a cookie."""
        self._flows.forget(cookie)
        self._owners.forget(cookie)

    def _share(self, flow: _FlowLines, raw, i: int, tgid: int, now: float) -> FlowEvents:
        """What ``flow``'s lines share, its owner asked (again) for record ``i``."""
        shared = flow.shared
        if not self._prepared and (shared is None or shared.owner is None):
            self._prepare(raw, i)
            self._prepared = True
        record = record_at(raw, i)
        remembered = ((record.owner_tgid, record.owner_comm) if record.owner_tgid
                      else self._remembered.get(record.cookie, (0, b"")))
        owner = self._owners.owner(record.cookie, record.ino, tgid, *remembered)
        if shared is not None and shared.owner == owner:
            flow.shared = shared.asked(tgid, now)
        else:
            flow.shared = FlowEvents(flow_event(record, owner, self._jobs.job(record.cgroup_id)),
                                     owner, tgid, now)
        return flow.shared

    def _prepare(self, raw, start: int) -> None:
        """For the sockets of this batch (from record ``start`` on) whose flow
        has no owner yet: one pass of the kernel's for their holders, if due,
        and the first owner the kernel remembered for each, in this batch or,
        for a socket the pass found without holder, in the next. A server's
        socket retransmits while the server holds it, then the server closes
        it, often before the pass: its file is gone, and the kernel's record
        of the close, which names the process that closed it, is in the ring
        by then, later than the socket's other records."""
        wanted: Dict[int, int] = {}
        remembered: Dict[int, Tuple[int, bytes]] = {}
        for cookie, ino, source, owner_tgid, owner_comm in _OWNER_FIELDS.iter_unpack(
                raw[start * _OWNER_FIELDS.size:]):
            if source == SOURCE_DROP:  # drop_lines asks for its own
                continue
            flow = self._flows.get(cookie)
            if flow is None or flow.shared is None or flow.shared.owner is None:
                # Its file as long as it had one: a closed socket's records have none.
                if not wanted.get(cookie):
                    wanted[cookie] = ino
                if owner_tgid and cookie not in remembered:
                    remembered[cookie] = owner_tgid, owner_comm
        self._owners.prepare(wanted.values())
        if any(cookie not in remembered and not self._owners.held(ino)
               for cookie, ino in wanted.items()):
            for cookie, _, _, owner_tgid, owner_comm in _OWNER_FIELDS.iter_unpack(self._ahead()):
                if owner_tgid and cookie in wanted and cookie not in remembered:
                    remembered[cookie] = owner_tgid, owner_comm
        self._remembered = remembered


def _described(shared: FlowEvents, facts: _Facts) -> TransportDrop:
    """The flow's shared event with the state and kind ``facts`` give."""
    state, tcp_flags, ca_state, flags, pending, source = facts
    return shared.keep(facts, msgspec.structs.replace(
        shared.event, state=state_name(state),
        kind=kind(source, tcp_flags, ca_state, flags, pending)))


def _failed(line: TransportDrop, err: int) -> TransportDrop:
    """``line`` of a retransmission that failed with ``err``."""
    return msgspec.structs.replace(line, err=err, err_name=err_name(err))
