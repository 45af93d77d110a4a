"""The kernel's 32-bit counters that records carry (tcp_sock.total_retrans,
segs_out, a request socket's SYN-ACK counts): they wrap at U32_WRAP, so a
rise is taken modulo it."""

U32_WRAP = 1 << 32
U32_MASK = U32_WRAP - 1


def since(then: int, now: int) -> int:
    """How far a u32 counter rose from ``then`` to ``now``, across a wrap."""
    return (now - then) & U32_MASK
