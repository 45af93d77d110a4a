"""Raw records into event lines: segments, owner, rate, event.

This is the per-record path, the one a retransmission storm runs through
hundreds of thousands of times a second, so it does per record only what
changes per record. Each record is unpacked into a plain tuple of the fields
that change (decoder.fields_struct, from the one layout definition), and
what a flow's lines share (addresses, entity, owner) is made once per flow,
from the full record (decoder.Record), the first time it retransmits: each
line is then that shared event with the record's own fields replaced, and
its state and kind are looked up by the fields they are derived from.

The owner is asked again when the record names another task (a socket
shared across fork), once per batch while the flow has none yet, and every
OWNER_TTL_S, so a process that changes its name or job shows it.
"""

import time
from typing import Dict, List, Optional, Tuple

import msgspec

from .accounting import segs_from
from .decoder import FLAG_HISTORY, RECORD_STRUCT, SOURCE_CLOSE, Record, fields_struct
from .event import TransportDrop, err_name, flow_event, kind, state_name
from .flows import FlowRates
from .owners import Owner, Owners

OWNER_TTL_S = 10.0

# Layout order: the loop below unpacks each tuple in this order.
HOT_FIELDS = ("ts_ns", "cookie", "ino", "skb_segs", "retrans", "prev_retrans", "sent", "tgid",
              "srtt_us", "err", "flags", "tcp_flags", "state", "source", "ca_state", "pending")
_HOT = fields_struct(HOT_FIELDS)
_COOKIE_INO = fields_struct(("cookie", "ino"))

# (state, tcp_flags, ca_state, flags, pending, source) -> (state name, kind)
_Described = Dict[Tuple[int, int, int, int, int, int], Tuple[str, Optional[str]]]
_MAX_DESCRIBED = 4096


class _Shared:
    """What a flow's lines share, and who it was asked of and when."""

    __slots__ = ("event", "owner", "tgid", "asked_at")

    def __init__(self, event: TransportDrop, owner: Optional[Owner], tgid: int, asked_at: float):
        self.event = event
        self.owner = owner
        self.tgid = tgid
        self.asked_at = asked_at


class LineMaker:
    def __init__(self, owners: Owners, window_s: float):
        self._owners = owners
        self._rates = FlowRates(int(window_s * 1e9))
        self._described: _Described = {}

    def __len__(self) -> int:
        return len(self._rates)

    def lines(self, raw, offset_ns: int) -> Tuple[List[int], List[TransportDrop]]:
        """The lines for a batch of raw records, in ring order, and the flow
        (socket cookie) of each. ``offset_ns`` turns the kernel's monotonic
        clock into wall-clock time."""
        rates = self._rates
        flow_of = rates.get
        sample = rates.sample
        slice_ns = rates.slice
        described = self._described
        replace = msgspec.structs.replace
        now = time.monotonic()
        stale = now - OWNER_TTL_S
        prepared = False
        flows: List[int] = []
        lines: List[TransportDrop] = []
        for i, (ts_ns, cookie, ino, skb_segs, retrans, prev_retrans, sent, tgid, srtt_us, err,
                flags, tcp_flags, state, source, ca_state, pending) in enumerate(
                    _HOT.iter_unpack(raw)):
            if flags & FLAG_HISTORY and retrans >= prev_retrans:
                segs = retrans - prev_retrans
            else:
                segs = segs_from(flags, prev_retrans, retrans, source, err, skb_segs)
            if segs:
                flow = flow_of(cookie)
                if flow is None or ts_ns - flow.sampled_at >= slice_ns:
                    flow = sample(cookie, ts_ns, retrans, sent)
                shared = flow.shared
                if (shared is None or shared.tgid != tgid or shared.asked_at < stale
                        or (shared.owner is None and shared.asked_at != now)):
                    if not prepared and (shared is None or shared.owner is None):
                        self._prepare(raw, i)
                        prepared = True
                    shared = flow.shared = self._share(shared, raw, i, tgid, now)
                key = (state, tcp_flags, ca_state, flags, pending, source)
                text = described.get(key)
                if text is None:
                    text = self._describe(key)
                flows.append(cookie)
                lines.append(replace(
                    shared.event,
                    ts=(ts_ns + offset_ns) // 1_000_000,
                    value=flow.value(retrans, sent),
                    segs=segs,
                    state=text[0],
                    kind=text[1],
                    rtt_us=srtt_us or None,
                ) if not err else replace(
                    shared.event,
                    ts=(ts_ns + offset_ns) // 1_000_000,
                    value=flow.value(retrans, sent),
                    segs=segs,
                    err=err,
                    err_name=err_name(err),
                    state=text[0],
                    kind=text[1],
                    rtt_us=srtt_us or None,
                ))
            if source == SOURCE_CLOSE:
                rates.forget(cookie)
                self._owners.forget(cookie)
        if lines:
            rates.forget_idle(ts_ns)
        return flows, lines

    def _prepare(self, raw, start: int) -> None:
        """One /proc walk, if due, for the sockets of this batch (from record
        ``start`` on) whose flow has no owner yet."""
        wanted = []
        for cookie, ino in _COOKIE_INO.iter_unpack(raw[start * _COOKIE_INO.size:]):
            flow = self._rates.get(cookie)
            if flow is None or flow.shared is None or flow.shared.owner is None:
                wanted.append(ino)
        self._owners.prepare(wanted)

    def _share(self, shared: Optional[_Shared], raw, i: int, tgid: int, now: float) -> _Shared:
        record = Record(*RECORD_STRUCT.unpack_from(raw, i * RECORD_STRUCT.size))
        owner = self._owners.owner(record.cookie, record.ino, tgid)
        if shared is not None and shared.owner == owner:
            return _Shared(shared.event, owner, tgid, now)
        return _Shared(flow_event(record, owner), owner, tgid, now)

    def _describe(self, key) -> Tuple[str, Optional[str]]:
        state, tcp_flags, ca_state, flags, pending, source = key
        if len(self._described) >= _MAX_DESCRIBED:
            self._described.clear()
        text = self._described[key] = (state_name(state),
                                       kind(source, tcp_flags, ca_state, flags, pending))
        return text
