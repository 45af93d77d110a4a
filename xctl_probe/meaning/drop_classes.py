"""Which drops are a loss: one table of the kernel's drop reasons, by name.

A drop line is an event xctl forwards, and its ``value`` fires
network_stall from 10: a drop goes out by default only for a packet the
network lost or this host refused. What is no loss (frees at teardown,
duplicates of data already received, copies, segments after the peer's
FIN) is skipped in the kernel, before a record is reserved, unless
``--drops all`` asks for it too. The kernel renumbers its reasons from
release to release, so the table holds names; at load each name this kernel
has becomes its number (kernel/drop_policy.py). A name the table lacks, as
a newer kernel brings, is a loss: reported, never hidden.
"""

from typing import Collection, Dict, List, NamedTuple, Optional, Tuple

from ..kernel.drop_policy import LOSS, NOT_ASKED, NOT_LOSS, NOT_LOSS_AFTER_FIN, TABLE, DropPolicy
from ..kernel.drop_reasons import DropReasons


class Group(NamedTuple):
    label: str
    drop_class: int  # kernel.drop_policy's LOSS, NOT_LOSS or NOT_LOSS_AFTER_FIN
    why: str
    names: Tuple[str, ...]


NO_DROP = Group("no drop", NOT_LOSS,
                "no drop at all: a free the kernel reports here too (CONSUMED, Linux 6.3+), and "
                "the bounds of the enum; the program returns on the first two before the table, "
                "whatever the policy",
                ("NOT_DROPPED_YET", "CONSUMED", "MAX", "SUBSYS_MASK"))

GROUPS = (
    NO_DROP,
    Group("teardown", NOT_LOSS,
          "the end of a connection, not a packet lost on its way: a socket's queues freed in "
          "bulk as it is disconnected or destroyed (QUEUE_PURGE), a segment for a socket "
          "already closed (TCP_CLOSE), data for a socket its application closed for reading, "
          "which the kernel answers with a reset (TCP_ABORT_ON_DATA), and the like of other "
          "sockets",
          ("QUEUE_PURGE", "TCP_CLOSE", "TCP_ABORT_ON_DATA", "SOCKET_CLOSE", "UNIX_DISCONNECT",
           "UNIX_SKIP_OOB")),
    Group("duplicate", NOT_LOSS,
          "a copy of what the socket already has: data it received before (the peer "
          "retransmitted it, and that retransmission has its own line), a segment wholly "
          "before what it acknowledged, out-of-order data merged into the queues, an ACK "
          "overtaken by a newer segment (TCP_RFC7323_PAWS_ACK, Linux 6.14+), a duplicate "
          "fragment",
          ("TCP_OLD_DATA", "TCP_OLD_SEQUENCE", "TCP_OFO_DROP", "TCP_OFOMERGE",
           "TCP_RFC7323_PAWS_ACK", "DUP_FRAG")),
    Group("copy", NOT_LOSS,
          "a copy whose packet goes on elsewhere: a capture's (a packet socket that fell "
          "behind) or one seen in promiscuous mode for another host",
          ("PACKET_SOCK_ERROR", "OTHERHOST")),
    Group("after FIN", NOT_LOSS_AFTER_FIN,
          "the kernel gave no reason: a loss, unless the segment was received after the "
          "peer's FIN (CLOSE_WAIT, CLOSING, LAST_ACK, TIME_WAIT) or once the socket closed "
          "(CLOSE). The FIN comes after all the peer's data, so what follows holds nothing the "
          "socket awaits: the ACKs for its own data, which tcp_rcv_state_process() processes "
          "and then frees without a reason. The kernel names the receiving socket from Linux "
          "6.11 (rx_sk); before, such a segment comes without one and is reported",
          ("NOT_SPECIFIED",)),
    Group("refused", LOSS,
          "a rule or program of this host's refused it: netfilter, tc, XDP, BPF, a socket "
          "filter, IPsec or an LSM policy, reverse-path filtering, a minimum TTL",
          ("NETFILTER_DROP", "SOCKET_FILTER", "BPF_CGROUP_EGRESS", "TC_EGRESS", "TC_INGRESS",
           "TC_COOKIE_ERROR", "TC_CHAIN_NOTFOUND", "TC_RECLASSIFY_LOOP", "XDP", "XFRM_POLICY",
           "SECURITY_HOOK", "IP_RPFILTER", "TAP_FILTER", "TAP_TXFILTER", "TCP_MINTTL",
           "PSP_INPUT", "PSP_OUTPUT", "BRIDGE_INGRESS_STP_STATE", "ARP_PVLAN_DISABLE",
           "MAC_IEEE_MAC_CONTROL")),
    Group("no room", LOSS,
          "no room for it: a full socket buffer, backlog or receive window, memory, a queue "
          "discipline's limit or congestion, a full CPU backlog, device ring or neighbour queue",
          ("SOCKET_RCVBUFF", "SOCKET_BACKLOG", "PROTO_MEM", "TCP_ZEROWINDOW",
           "TCP_OFO_QUEUE_PRUNE", "TCP_LISTEN_OVERFLOW", "QDISC_DROP", "QDISC_OVERLIMIT",
           "QDISC_CONGESTED", "CAKE_FLOOD", "FQ_BAND_LIMIT", "FQ_HORIZON_LIMIT", "FQ_FLOW_LIMIT",
           "DUALPI2_STEP_DROP", "CPU_BACKLOG", "FULL_RING", "NOMEM", "PFMEMALLOC",
           "NEIGH_QUEUEFULL", "SKB_RX_HEADROOM")),
    Group("damaged", LOSS,
          "damaged or invalid as it arrived or left: a checksum, header, length, fragment or "
          "address that does not hold",
          ("TCP_CSUM", "UDP_CSUM", "IP_CSUM", "ICMP_CSUM", "SKB_CSUM", "PKT_TOO_SMALL",
           "PKT_TOO_BIG", "HDR_TRUNC", "IP_INHDR", "DEV_HDR", "IPV6_BAD_EXTHDR", "SKB_GSO_SEG",
           "SKB_BAD_GSO", "SKB_UCOPY_FAULT", "FRAG_REASM_TIMEOUT", "FRAG_TOO_FAR",
           "INVALID_PROTO", "UNHANDLED_PROTO", "IP_NOPROTO", "UNICAST_IN_L2_MULTICAST",
           "MAC_INVALID_SOURCE", "LOCAL_MAC", "VXLAN_INVALID_HDR", "IP_TUNNEL_ECN",
           "CAN_RX_INVALID_FRAME", "CANFD_RX_INVALID_FRAME", "CANXL_RX_INVALID_FRAME",
           "IPV6_NDISC_FRAG", "IPV6_NDISC_HOP_LIMIT", "IPV6_NDISC_BAD_CODE",
           "IPV6_NDISC_BAD_OPTIONS", "IPV6_NDISC_NS_OTHERHOST", "IP_LOCAL_SOURCE",
           "IP_INVALID_SOURCE", "IP_LOCALNET", "IP_INVALID_DEST")),
    Group("no way", LOSS,
          "no way on: no route, no neighbour, a device down or missing, a tunnel without its "
          "information, a loop",
          ("IP_OUTNOROUTES", "IP_INNOROUTES", "IP_INADDRERRORS", "IPV6DISABLED",
           "NEIGH_CREATEFAIL", "NEIGH_FAILED", "NEIGH_DEAD", "NEIGH_HH_FILLFAIL", "DEV_READY",
           "NO_TX_TARGET", "TUNNEL_TXINFO", "VXLAN_VNI_NOT_FOUND", "VXLAN_ENTRY_EXISTS",
           "RECURSION_LIMIT")),
    Group("refused by TCP", LOSS,
          "TCP refused it: no socket for it (a SYN to a closed port, a segment for a "
          "connection this host no longer has), or its flags, sequence, acknowledgement, "
          "timestamps or signature failed the socket's checks",
          ("NO_SOCKET", "TCP_FLAGS", "TCP_OVERWINDOW", "TCP_RFC7323_PAWS", "TCP_RFC7323_TW_PAWS",
           "TCP_RFC7323_TSECR", "TCP_INVALID_SEQUENCE", "TCP_INVALID_END_SEQUENCE",
           "TCP_INVALID_ACK_SEQUENCE", "TCP_RESET", "TCP_INVALID_SYN", "TCP_FASTOPEN",
           "TCP_OLD_ACK", "TCP_TOO_OLD_ACK", "TCP_ACK_UNSENT_DATA", "TCP_AUTH_HDR",
           "TCP_MD5NOTFOUND", "TCP_MD5UNEXPECTED", "TCP_MD5FAILURE", "TCP_AONOTFOUND",
           "TCP_AOUNEXPECTED", "TCP_AOKEYNOTFOUND", "TCP_AOFAILURE")),
)

BY_NAME: Dict[str, Group] = {name: group for group in GROUPS for name in group.names}


def policy(reasons: DropReasons, report_all: bool = False,
           asked: Optional[Collection[int]] = None) -> DropPolicy:
    """What the drop program is told on this kernel: each class by its number
    here; with ``asked`` (--reason), every other reason NOT_ASKED."""
    classes = {code: BY_NAME[name].drop_class for code, name in reasons.items()
               if name in BY_NAME}
    if asked is None:
        return DropPolicy(classes, report_all)
    return DropPolicy({code: classes.get(code, LOSS) if code in asked else NOT_ASKED
                       for code in range(TABLE)}, report_all, beyond=NOT_ASKED)


def label(name: str) -> str:
    """What the table makes of a reason: its group's label, or that it does not know it."""
    group = BY_NAME.get(name)
    return group.label if group is not None else "not in the table: a loss"


def unknown(reasons: DropReasons) -> List[str]:
    """The names this kernel has that the table lacks: each reported as a loss."""
    return sorted(name for _, name in reasons.items() if name not in BY_NAME)


def summary(reasons: DropReasons) -> str:
    """How the table meets this kernel, for ``check``: the drops it skips, and
    the names it does not know."""
    skipped = sum(BY_NAME[name].drop_class != LOSS for _, name in reasons.items()
                  if name in BY_NAME and BY_NAME[name] is not NO_DROP)
    said = f"{skipped} are no loss, skipped in the kernel unless --drops all"
    strangers = unknown(reasons)
    if strangers:
        said += (f"; {len(strangers)} this probe does not know, reported as loss: "
                 f"{', '.join(strangers)}")
    return said
