"""The event xctl accepts, and how a decoded record becomes one.

xctl's contract (see the README): ``ts`` integer epoch milliseconds,
``event_type`` one of its fixed names, ``entity_id`` naming the resource,
``pid`` only when known and never 0, ``value`` always a string, and never
``node_id``, which the agent fills in itself. Fields after those are ours;
xctl ignores fields it does not know.
"""

import socket
from typing import Optional

import msgspec

from .decoder import SOURCE_SYNACK, Record

EVENT_TYPE = "transport.drop"

# include/net/tcp_states.h: part of the kernel's ABI (/proc/net/tcp shows them).
TCP_STATES = {
    1: "ESTABLISHED",
    2: "SYN_SENT",
    3: "SYN_RECV",
    4: "FIN_WAIT1",
    5: "FIN_WAIT2",
    6: "TIME_WAIT",
    7: "CLOSE",
    8: "CLOSE_WAIT",
    9: "LAST_ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "NEW_SYN_RECV",
    13: "BOUND_INACTIVE",
}

_V4_MAPPED = b"\x00" * 10 + b"\xff\xff"


class TransportDrop(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """One line of output: a retransmission on one flow."""

    ts: int
    event_type: str
    entity_id: str
    pid: Optional[int] = None
    value: str
    family: str
    saddr: str
    daddr: str
    sport: int
    dport: int
    segs: int
    err: int
    state: str
    netns: int
    kind: Optional[str] = None
    lost: Optional[int] = None


def _addresses(record: Record):
    """(family, local, remote) as text; an IPv4-mapped IPv6 flow is IPv4 on the wire."""
    if record.family == socket.AF_INET6 and not (
        record.saddr.startswith(_V4_MAPPED) and record.daddr.startswith(_V4_MAPPED)
    ):
        return (
            "ipv6",
            socket.inet_ntop(socket.AF_INET6, record.saddr),
            socket.inet_ntop(socket.AF_INET6, record.daddr),
        )
    if record.family == socket.AF_INET6:
        return (
            "ipv4",
            socket.inet_ntop(socket.AF_INET, record.saddr[12:16]),
            socket.inet_ntop(socket.AF_INET, record.daddr[12:16]),
        )
    return (
        "ipv4",
        socket.inet_ntop(socket.AF_INET, record.saddr[:4]),
        socket.inet_ntop(socket.AF_INET, record.daddr[:4]),
    )


def to_event(record: Record, ts_ms: int, value: str, lost: Optional[int] = None) -> TransportDrop:
    family, saddr, daddr = _addresses(record)
    return TransportDrop(
        ts=ts_ms,
        event_type=EVENT_TYPE,
        entity_id=f"network-{saddr}-{daddr}-{record.sport}-{record.dport}",
        value=value,
        family=family,
        saddr=saddr,
        daddr=daddr,
        sport=record.sport,
        dport=record.dport,
        segs=record.segs,
        err=record.err,
        state=TCP_STATES.get(record.state, f"UNKNOWN_{record.state}"),
        netns=record.netns,
        kind="synack" if record.source == SOURCE_SYNACK else None,
        lost=lost,
    )
