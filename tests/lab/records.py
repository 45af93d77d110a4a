"""Synthetic records of the real layout (bpf/record.h, packed with
decoder.RECORD_STRUCT as the ring buffer gives them) and the lines the
probe's own path (LineMaker) makes of them, for tests without a kernel.

The constants here are the kernel's (tcp.h, tcp_states.h), written out
again so that a test does not take them from the code it tests."""

import socket
from typing import List, Optional

from xctl_probe.context.owners import Owners
from xctl_probe.kernel.decoder import RECORD_FIELDS, RECORD_STRUCT, SOURCE_RETRANSMIT, Record
from xctl_probe.output.lines import LineMaker

SECOND = 10**9
# The wall clock when the kernel's monotonic clock read 0.
OFFSET_NS = 1_700_000_000 * SECOND
TCPHDR_FIN = 0x01
TCPHDR_SYN = 0x02
TCPHDR_ACK = 0x10
ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT1, CLOSE_WAIT, NEW_SYN_RECV = 1, 2, 3, 4, 8, 12
CA_OPEN, CA_RECOVERY, CA_LOSS = 0, 3, 4
ICSK_TIME_RETRANS, ICSK_TIME_LOSS_PROBE = 1, 5

NAMES = [name for name, _ in RECORD_FIELDS]
# One segment retransmitted in fast recovery on an established IPv4 flow
# 10.0.0.1:40000 -> 10.0.0.2:9000 the probe had not seen before (no
# history: segs is the skb's), 1 of the 100 segments it sent so far.
DEFAULTS = dict.fromkeys(NAMES, 0)
DEFAULTS.update(
    ts_ns=5 * SECOND, cookie=4097, netns=4026531840, skb_segs=1, retrans=1, sent=100,
    family=socket.AF_INET, sport=40000, dport=9000, tcp_flags=TCPHDR_ACK, state=ESTABLISHED,
    source=SOURCE_RETRANSMIT, ca_state=CA_RECOVERY, pending=ICSK_TIME_RETRANS,
    saddr=socket.inet_aton("10.0.0.1") + bytes(12),
    daddr=socket.inet_aton("10.0.0.2") + bytes(12), owner_comm=bytes(16))


def record(**fields) -> bytes:
    """One raw record: DEFAULTS with ``fields`` replaced."""
    values = {**DEFAULTS, **fields}
    return RECORD_STRUCT.pack(*(values[name] for name in NAMES))


def decode(raw) -> List[Record]:
    """Every record in ``raw``, every field."""
    return [Record(*values) for values in RECORD_STRUCT.iter_unpack(raw)]


class Holders(dict):
    """{socket inode: pids holding it}, as a test sets them, answered as the
    kernel's passes answer (kernel/holders.py)."""

    def __call__(self, inodes):
        return {ino: set(self[ino]) for ino in inodes if ino in self}


def maker(proc, window_s: float = 10, hz=None, holders: Optional[Holders] = None) -> LineMaker:
    """A line maker whose owners hold the sockets ``holders`` says (none by
    default), the processes as the /proc at ``proc`` (a test's) shows them."""
    return LineMaker(Owners(Holders() if holders is None else holders, proc=str(proc)),
                     window_s=window_s, hz=hz)


def line(proc, hz=None, holders: Optional[Holders] = None, **fields):
    """The line of one record (``record(**fields)``), its flow new to the probe."""
    [made] = maker(proc, hz=hz, holders=holders).lines(record(**fields), OFFSET_NS)
    return made
