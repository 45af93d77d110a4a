"""How many segments each record accounts for: the rise of the socket's
own retransmission counter since its previous record.

Every record carries ``tcp_sock.total_retrans`` as the BPF program read it.
Taking the rise of that counter, rather than the retransmitted skb's segment
count, makes the sum over lines equal the kernel's TcpRetransSegs even when
the kernel skips a BPF run (recursion protection, or on some VMs softirqs on
top of certain threads), or a record is lost in a full ring buffer: the
socket's next record, or its close record, carries what was missed.

The counter is not monotonic. The kernel zeroes it when a connection attempt
fails or the socket is disconnected (tcp_disconnect()), and the socket can
then be connected again: a counter lower than the last one seen is a reset,
and what was retransmitted since is the counter itself. Only a drop of more
than half the 32-bit range is taken as a wrap.

A socket's first record has no previous one: it counts its own skb, unless
the attempt failed before the kernel counted it.
"""

import errno
from collections import OrderedDict

from .decoder import SOURCE_CLOSE, SOURCE_SYNACK, Record

_U32 = 1 << 32

# Linux 6.17, "tcp: trace retransmit failures in tcp_retransmit_skb": the
# tracepoint also fires when __tcp_retransmit_skb() gives up with one of
# these before it adds the skb to TcpRetransSegs and total_retrans; any
# other error comes from the transmit itself, after the counters moved.
_ERR_BEFORE_COUNTING = frozenset(
    -code for code in (errno.EBUSY, errno.EINVAL, errno.ENOMEM, errno.EAGAIN, errno.EHOSTUNREACH)
)


def rise(previous: int, now: int) -> int:
    """Segments retransmitted between two readings of a socket's counter."""
    if now >= previous:
        return now - previous
    if previous - now > _U32 // 2:
        return now + _U32 - previous
    return now


class Accounting:
    """The last counter seen per socket, bounded by count (oldest first out)."""

    def __init__(self, max_sockets: int = 65536):
        self._last: "OrderedDict[int, int]" = OrderedDict()
        self._max = max_sockets

    def __len__(self) -> int:
        return len(self._last)

    def segs(self, record: Record) -> int:
        """Segments this record accounts for; 0 means it gives no line.

        A SYN-ACK's request socket has no counter of its own: one segment. A
        close record also ends the socket's entry.
        """
        if record.source == SOURCE_SYNACK:
            return record.skb_segs
        previous = self._last.pop(record.sock, None)
        if previous is not None:
            counted = rise(previous, record.retrans)
        elif record.source == SOURCE_CLOSE or record.err in _ERR_BEFORE_COUNTING:
            counted = 0
        else:
            counted = record.skb_segs
        if record.source != SOURCE_CLOSE:
            self._last[record.sock] = record.retrans
            if len(self._last) > self._max:
                self._last.popitem(last=False)
        return counted
