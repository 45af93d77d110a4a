"""How many segments each record accounts for: the rise of the socket's
own retransmission counter since its previous record.

Every record carries ``tcp_sock.total_retrans`` as the BPF program read it,
and, when the probe has seen the socket before, the counter at its previous
record that reached user space (or at the socket's birth, for a socket born
while the probe ran). The BPF side keeps that reading with the socket and
moves it only when a record is submitted, so the rise between the two
readings makes the sum over lines equal the kernel's TcpRetransSegs even when
the kernel skips a BPF run (recursion protection, or on some VMs softirqs on
top of certain threads) or a record is lost in a full ring buffer: the
socket's next record, or its close record, carries what was missed.

The counter is not monotonic. The kernel zeroes it when a connection attempt
fails or the socket is disconnected (tcp_disconnect()), and the socket can
then be connected again: a counter lower than the last one seen is a reset,
and what was retransmitted since is the counter itself. Only a drop of more
than half the 32-bit range is taken as a wrap.

A record without history is the first the probe sees of a socket older than
the probe: it counts its own skb, unless the attempt failed before the kernel
counted it. A SYN-ACK of a request socket is always one segment.

The answer depends on the record alone: user space keeps no per-socket
state for it, so nothing here can be evicted, go stale or be reused.
"""

import errno

from ..kernel.decoder import FLAG_HISTORY, SOURCE_CLOSE, Record
from .counters import U32_WRAP, since

# Linux 6.17, "tcp: trace retransmit failures in tcp_retransmit_skb": the
# tracepoint also fires when __tcp_retransmit_skb() gives up with one of
# these before it adds the skb to TcpRetransSegs and total_retrans; any
# other error comes from the transmit itself, after the counters moved.
_ERR_BEFORE_COUNTING = frozenset(
    -code for code in (errno.EBUSY, errno.EINVAL, errno.ENOMEM, errno.EAGAIN, errno.EHOSTUNREACH)
)


def rise(previous: int, now: int) -> int:
    """Segments retransmitted between two readings of a socket's counter."""
    if now >= previous or previous - now > U32_WRAP // 2:
        return since(previous, now)
    return now


def segs(record: Record) -> int:
    """Segments this record accounts for; 0 means it gives no line."""
    if record.flags & FLAG_HISTORY:
        return rise(record.prev_retrans, record.retrans)
    if record.source == SOURCE_CLOSE or record.err in _ERR_BEFORE_COUNTING:
        return 0
    return record.skb_segs
