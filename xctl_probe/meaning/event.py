"""The event xctl accepts, and how a decoded record becomes one.

xctl's contract (see the README): ``ts`` integer epoch milliseconds,
``event_type`` one of its fixed names, ``entity_id`` naming the resource,
``pid`` only when known and never 0, ``value`` always a string, and never
``node_id``, which the agent fills in itself. Fields after those are ours;
xctl ignores fields it does not know.
"""

import errno
import socket
from typing import Annotated, Literal, Optional, Tuple

import msgspec

from ..context.owners import Owner
from ..context.sockets import V4_MAPPED
from ..kernel.decoder import FLAG_UNDO_MARKER, SOURCE_CLOSE, Record

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

# Kernel constants that are ABI or have not moved since Linux 4.x:
# congestion-avoidance states (uapi tcp.h: TCP_CA_Open 0, Disorder 1, CWR 2,
# Recovery 3, Loss 4), the timer that is due (inet_connection_sock.h:
# ICSK_TIME_LOSS_PROBE 5) and the TCP header's flags (tcp.h: TCPHDR_*).
TCP_CA_RECOVERY = 3
TCP_CA_LOSS = 4
ICSK_TIME_LOSS_PROBE = 5
TCP_SYN_SENT = 2
TCPHDR_SYN = 0x02
TCPHDR_ACK = 0x10


# include/linux/netdevice.h: a qdisc's answer when it refuses a packet.
# tcp_transmit_skb() hands NET_XMIT_DROP on as a positive number (net_xmit_eval()
# turns NET_XMIT_CN into 0); every other failure is a negative errno.
_NET_XMIT = {1: "NET_XMIT_DROP", 2: "NET_XMIT_CN"}


def err_name(err: int) -> Optional[str]:
    """The name of a retransmission's failure: ENOBUFS, NET_XMIT_DROP, ...; None for 0."""
    if err < 0:
        return errno.errorcode.get(-err, f"E{-err}")
    if err > 0:
        return _NET_XMIT.get(err, f"NET_XMIT_{err}")
    return None


def kind(source: int, tcp_flags: int, ca_state: int, flags: int, pending: int
         ) -> Optional[str]:
    """Why the kernel retransmitted: what the segment is, then the state of
    the socket's loss recovery at that moment.

    - synack: the segment is a SYN-ACK (a request socket's, or a Fast Open
      child's);
    - syn: the segment is a SYN;
    and for a segment of data (or a FIN):
    - rto: the retransmission timer expired: tcp_retransmit_timer() enters
      the Loss state, with an undo point, and Loss lasts while the kernel
      retransmits what it lost;
    - noncongestion: the Loss state entered without the timer, for a loss
      that is not congestion: the path MTU shrank (an ICMP fragmentation
      needed, or packet too big) or the SYN-ACK left a Fast Open SYN's data
      unacknowledged; the kernel marks the segments lost at once, clears the
      undo point, and retransmits them (TcpExtTCPSlowStartRetrans, no
      TcpExtTCPTimeouts);
    - fast: fast retransmit, in the Recovery state entered on duplicate
      ACKs, SACKs or RACK's reordering timer, whatever the socket's TCP state
      (a Fast Open server still in SYN_RECV recovers too);
    - tlp: a tail loss probe: still in Open, with the loss-probe timer the
      one due (tcp_send_loss_probe() retransmits the tail from that timer).
    Anything else (and the close record, which carries segments a skipped
    run missed) has no kind.
    """
    if source == SOURCE_CLOSE:
        return None
    if tcp_flags & TCPHDR_SYN:
        return "synack" if tcp_flags & TCPHDR_ACK else "syn"
    if ca_state == TCP_CA_LOSS:
        return "rto" if flags & FLAG_UNDO_MARKER else "noncongestion"
    if ca_state == TCP_CA_RECOVERY:
        return "fast"
    if pending == ICSK_TIME_LOSS_PROBE:
        return "tlp"
    return None


def state_name(state: int) -> str:
    return TCP_STATES.get(state) or f"UNKNOWN_{state}"


Kind = Literal["rto", "noncongestion", "fast", "tlp", "syn", "synack", "drop"]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Positive = Annotated[int, msgspec.Meta(ge=1)]


# The annotations are the contract for readers: ``describe`` publishes the
# JSON Schema generated from them, docstring included.
class TransportDrop(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """One line of output: a retransmission on one flow, or a packet of it dropped."""

    ts: Annotated[int, msgspec.Meta(ge=0, description="epoch milliseconds")]
    event_type: Literal["transport.drop"]
    entity_id: Annotated[str, msgspec.Meta(pattern=r"^network-")]
    job_id: Optional[str] = None
    pid: Optional[Positive] = None
    value: Annotated[str, msgspec.Meta(
        pattern=r"^[0-9]+(\.[0-9]+)?$",
        description="the flow's retransmission rate over the window, percent; for a drop, "
        "the flow's drops over the window")]
    comm: Optional[str] = None
    family: Literal["ipv4", "ipv6"]
    saddr: str
    daddr: str
    sport: Port
    dport: Port
    segs: Annotated[int, msgspec.Meta(
        ge=1, description="segments this line accounts for (packets, for a drop)")]
    err: int
    err_name: Optional[str] = None
    state: Optional[str] = None
    kind: Optional[Kind] = None
    reason: Optional[Annotated[str, msgspec.Meta(
        description="why the kernel dropped the packet, in its own words (kind drop)")]] = None
    reason_code: Optional[Annotated[int, msgspec.Meta(
        ge=0, description="the running kernel's number for reason")]] = None
    loss: Optional[Annotated[bool, msgspec.Meta(
        description="false for a drop that is no loss (reported with --drops all only); "
        "its value is 0")]] = None
    rtt_us: Optional[Positive] = None
    rto_ms: Optional[Annotated[int, msgspec.Meta(
        ge=0, description="the socket's retransmission timeout now; it doubles with each "
        "timeout in a row")]] = None
    backoff: Optional[Annotated[int, msgspec.Meta(
        ge=0, description="retransmission timeouts in a row without progress")]] = None
    stalled_ms: Optional[Annotated[int, msgspec.Meta(
        ge=0, description="milliseconds since the socket last received an ACK from its peer")]
    ] = None
    cgroup_id: Optional[Positive] = None
    netns: int
    lost: Optional[Annotated[int, msgspec.Meta(
        ge=1, description="records lost since the probe started (cumulative): found the ring "
        "buffer full, runs the kernel skipped, or dropped behind a stalled reader")]] = None
    count: Optional[Annotated[int, msgspec.Meta(
        ge=2, description="records this line merges, when the reader fell behind, or the "
        "packets of a flood's drops the kernel only counted")]] = None


def _addresses(record: Record):
    """(family, local, remote) as text; an IPv4-mapped IPv6 flow is IPv4 on the wire."""
    if record.family == socket.AF_INET6 and not (
        record.saddr.startswith(V4_MAPPED) and record.daddr.startswith(V4_MAPPED)
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


def flow_event(record: Record, owner: Optional[Owner] = None,
               job_id: Optional[str] = None) -> TransportDrop:
    """What every line of ``record``'s flow and owner shares, made once per
    flow: the line maker fills in the rest per record. ``job_id`` is the job
    the socket's cgroup names; without one, the owner's."""
    family, saddr, daddr = _addresses(record)
    return TransportDrop(
        ts=0,
        event_type=EVENT_TYPE,
        entity_id=f"network-{saddr}-{daddr}-{record.sport}-{record.dport}",
        job_id=job_id or (owner.job_id if owner else None),
        pid=owner.pid if owner else None,
        value="0",
        comm=owner.comm if owner else None,
        family=family,
        saddr=saddr,
        daddr=daddr,
        sport=record.sport,
        dport=record.dport,
        segs=1,
        err=0,
        cgroup_id=record.cgroup_id or None,
        netns=record.netns,
    )


def timers(rto: int, backoff: int, ack_age: int, state: int, hz: Optional[int]
           ) -> Tuple[Optional[int], Optional[int], Optional[int]]:
    """(rto_ms, backoff, stalled_ms) of a record: none for a record without a
    socket of its own (a handshake's request, a drop: rto 0), milliseconds
    only where HZ is known, and stalled_ms only once the socket has heard from
    its peer (in SYN_SENT rcv_tstamp holds nothing yet)."""
    if not rto:
        return None, None, None
    if not hz:
        return None, backoff, None
    return (jiffies_ms(rto, hz), backoff,
            jiffies_ms(ack_age, hz) if state != TCP_SYN_SENT else None)


def jiffies_ms(jiffies: int, hz: int) -> int:
    """A span the kernel keeps in jiffies, in whole milliseconds (rounded down)."""
    return jiffies * 1000 // hz


def as_drop(flow: TransportDrop, state: int, reason: str, reason_code: int,
            loss: bool = True) -> TransportDrop:
    """``flow``'s event as a drop of ``reason`` (the kernel's number ``reason_code``)
    in TCP state ``state`` (0: no socket), a loss or not: what such drop lines
    of a flow share."""
    return msgspec.structs.replace(flow, state=state_name(state) if state else None,
                                   kind="drop", reason=reason, reason_code=reason_code,
                                   loss=None if loss else False)

