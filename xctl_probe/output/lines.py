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

A dropped packet's record takes a path of its own, cached the same way per
flow (its namespace and four-tuple, counted over the window): its owner
comes from the socket the kernel named or, failing that, from the socket of
its four-tuple in its namespace, asked once per flow like a retransmission's
and on every drop while the flow has none (a drop has no cookie for the
owner to be asked again a batch later by).
"""

import time
from typing import Dict, List, Optional, Tuple

import msgspec

from ..context.jobs import CgroupJobs
from ..context.owners import Owner, Owners
from ..context.sockets import SocketsByTuple
from ..kernel.decoder import (FLAG_HISTORY, RECORD_STRUCT, SOURCE_CLOSE, SOURCE_DROP, Record,
                              fields_struct)
from ..kernel.drop_reasons import DropReasons
from ..meaning.accounting import segs as segs_of
from ..meaning.event import (TCP_SYN_SENT, TransportDrop, as_drop, err_name, flow_event, kind,
                             state_name, timers)
from ..meaning.flows import _U32, RATE_TEXT, DropCounts, FlowRates

OWNER_TTL_S = 10.0
# Later than any record of the batch that asked, earlier than the next batch.
_NEXT_BATCH = 1e-6

# Layout order: the loop below unpacks each tuple in this order.
HOT_FIELDS = ("ts_ns", "cookie", "retrans", "prev_retrans", "sent", "tgid", "srtt_us", "err",
              "flags", "tcp_flags", "state", "source", "ca_state", "pending", "rto", "backoff",
              "ack_age")
_HOT = fields_struct(HOT_FIELDS)
_COOKIE_INO = fields_struct(("cookie", "ino"))
# What a drop's line takes beyond the hot fields.
_DROP = fields_struct(("ino", "netns", "skb_segs", "sport", "dport", "saddr", "daddr",
                       "reason"))

# (state, tcp_flags, ca_state, flags, pending, source): what a retransmission's
# state and kind derive from; a drop's line derives from (state, reason).
_Facts = Tuple[int, int, int, int, int, int]


class _Shared:
    """What a flow's lines share, the task (and, for drops, the socket file)
    it was asked for, and when to ask again: after OWNER_TTL_S, or in the
    next batch if there was no owner. ``by_facts`` holds the shared event
    with state and kind (and a drop's reason) filled in, for each set of
    facts they derive from that the flow has had."""

    __slots__ = ("event", "owner", "tgid", "ino", "recheck_at", "by_facts")

    def __init__(self, event: TransportDrop, owner: Optional[Owner], tgid: int, asked_at: float,
                 ino: int = 0):
        self.event = event
        self.owner = owner
        self.by_facts: Dict[tuple, TransportDrop] = {}
        self.asked(tgid, asked_at, ino)

    def asked(self, tgid: int, asked_at: float, ino: int = 0) -> "_Shared":
        """Asked again for task ``tgid`` (and socket file ``ino``), the owner unchanged."""
        self.tgid = tgid
        self.ino = ino
        self.recheck_at = asked_at + (OWNER_TTL_S if self.owner is not None else _NEXT_BATCH)
        return self

    def keep(self, facts: tuple, event: TransportDrop) -> TransportDrop:
        """Keeps ``event`` as the shared event for ``facts``; returns it."""
        if len(self.by_facts) >= _MAX_FACTS:
            self.by_facts.clear()
        self.by_facts[facts] = event
        return event


class LineMaker:
    def __init__(self, owners: Owners, window_s: float, reasons: Optional[DropReasons] = None,
                 jobs: Optional[CgroupJobs] = None, hz: Optional[int] = None):
        self._owners = owners
        self._hz = hz
        self._jobs = jobs if jobs is not None else CgroupJobs()
        self._rates = FlowRates(int(window_s * 1e9))
        self._drops = DropCounts(int(window_s * 1e9))
        self._reasons = reasons
        self._sockets = SocketsByTuple()

    def __len__(self) -> int:
        return len(self._rates)

    def lines(self, raw, offset_ns: int) -> List[TransportDrop]:
        """The lines for a batch of raw records, in ring order. ``offset_ns``
        turns the kernel's monotonic clock into wall-clock time."""
        rates = self._rates
        flow_of = rates.get
        sample = rates.sample
        slice_ns = rates.slice
        rate_text = RATE_TEXT
        replace = msgspec.structs.replace
        hz = self._hz
        now = time.monotonic()
        prepared = False
        lines: List[TransportDrop] = []
        add_line = lines.append
        for i, (ts_ns, cookie, retrans, prev_retrans, sent, tgid, srtt_us, err, flags, tcp_flags,
                state, source, ca_state, pending, rto, backoff, ack_age
                ) in enumerate(_HOT.iter_unpack(raw)):
            if source == SOURCE_DROP:
                add_line(self._drop_line(raw, i, ts_ns, tgid, state, now, offset_ns))
                continue
            if flags & FLAG_HISTORY and retrans >= prev_retrans:
                segs = retrans - prev_retrans
            else:
                segs = segs_of(_record(raw, i))
            if segs:
                flow = flow_of(cookie)
                if flow is None or ts_ns - flow.sampled_at >= slice_ns:
                    flow = sample(cookie, ts_ns, retrans, sent)
                shared = flow.shared
                if shared is None or shared.tgid != tgid or shared.recheck_at <= now:
                    if not prepared and (shared is None or shared.owner is None):
                        self._prepare(raw, i)
                        prepared = True
                    shared = flow.shared = self._share(shared, raw, i, tgid, now)
                facts = (state, tcp_flags, ca_state, flags, pending, source)
                base = shared.by_facts.get(facts)
                if base is None:
                    base = _described(shared, facts)
                d_retrans = (retrans - flow.base_retrans) & _U32
                d_sent = (sent - flow.base_sent) & _U32
                # event.timers, inline for its common case.
                if rto and hz and state != TCP_SYN_SENT:
                    rto_ms = rto * 1000 // hz
                    stalled_ms = ack_age * 1000 // hz
                else:
                    rto_ms, backoff, stalled_ms = timers(rto, backoff, ack_age, state, hz)
                add_line(replace(
                    base,
                    ts=(ts_ns + offset_ns) // 1_000_000,
                    # Flow.value, inline: this loop is where a storm's time goes.
                    value=rate_text[(d_retrans * 20000 + d_sent) // (2 * d_sent)]
                    if d_sent > d_retrans else ("100" if d_retrans else "0"),
                    segs=segs,
                    rtt_us=srtt_us or None,
                    rto_ms=rto_ms,
                    backoff=backoff,
                    stalled_ms=stalled_ms,
                ) if not err else replace(
                    base,
                    ts=(ts_ns + offset_ns) // 1_000_000,
                    value=flow.value(retrans, sent),
                    segs=segs,
                    err=err,
                    err_name=err_name(err),
                    rtt_us=srtt_us or None,
                    rto_ms=rto_ms,
                    backoff=backoff,
                    stalled_ms=stalled_ms,
                ))
            if source == SOURCE_CLOSE:
                rates.forget(cookie)
                self._owners.forget(cookie)
        if lines:
            rates.forget_idle(ts_ns)
        return lines

    def _drop_line(self, raw, i: int, ts_ns: int, tgid: int, state: int, now: float,
                   offset_ns: int) -> TransportDrop:
        """Record ``i``, a dropped packet, as its line."""
        ino, netns, packets, sport, dport, saddr, daddr, reason = _DROP.unpack_from(
            raw, i * RECORD_STRUCT.size)
        # The packet's flow: a socket's cookie may come only later in its life.
        key = (netns, saddr, daddr, sport, dport)
        flow = self._drops.add(key, ts_ns, packets)
        shared = flow.shared
        if (shared is None or shared.owner is None or shared.tgid != tgid
                or shared.recheck_at <= now or (ino and ino != shared.ino)):
            shared = flow.shared = self._share_drop(shared, raw, i, key, ino, tgid, now)
        facts = (state, reason)
        base = shared.by_facts.get(facts)
        if base is None:
            name = (self._reasons.name(reason) if self._reasons is not None
                    else f"UNKNOWN_{reason}")
            base = shared.keep(facts, as_drop(shared.event, state, name, reason))
        return msgspec.structs.replace(base, ts=(ts_ns + offset_ns) // 1_000_000,
                                       value=str(flow.total), segs=packets)

    def _share_drop(self, shared: Optional[_Shared], raw, i: int, key, ino: int, tgid: int,
                    now: float) -> _Shared:
        record = _record(raw, i)
        found = ino or self._sockets.inode(record.netns, record.saddr, record.sport,
                                           record.daddr, record.dport)
        if found:
            self._owners.prepare((found,))
        # Keyed by the flow, an owner found once stays with it after its socket
        # has lost its file (closed, its last packets still in flight).
        owner = self._owners.owner(key, found, tgid)
        if shared is not None and shared.owner == owner:
            return shared.asked(tgid, now, ino)
        return _Shared(flow_event(record, owner, self._jobs.job(record.cgroup_id)), owner, tgid,
                       now, ino)

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
        record = _record(raw, i)
        owner = self._owners.owner(record.cookie, record.ino, tgid, record.owner_tgid,
                                   record.owner_comm)
        if shared is not None and shared.owner == owner:
            return shared.asked(tgid, now)
        return _Shared(flow_event(record, owner, self._jobs.job(record.cgroup_id)), owner, tgid,
                       now)


def _record(raw, i: int) -> Record:
    """Record ``i`` of the batch, every field."""
    return Record(*RECORD_STRUCT.unpack_from(raw, i * RECORD_STRUCT.size))


# A flow has few sets of facts (a state or two, a kind or two); past this
# many, something churns: start over rather than grow.
_MAX_FACTS = 64


def _described(shared: _Shared, facts: _Facts) -> TransportDrop:
    """The flow's shared event with the state and kind ``facts`` give."""
    state, tcp_flags, ca_state, flags, pending, source = facts
    return shared.keep(facts, msgspec.structs.replace(
        shared.event, state=state_name(state),
        kind=kind(source, tcp_flags, ca_state, flags, pending)))
