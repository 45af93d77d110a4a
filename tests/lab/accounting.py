"""The probe's lines held against the kernel's counters: which lines are a
test's, and their sum of segs against TcpRetransSegs."""

from typing import Dict, List


def flow_lines(events: List[dict], port: int, netns: int) -> List[dict]:
    """The probe's retransmission lines about flows on ``port`` inside one namespace."""
    return [e for e in events if port in (e["sport"], e["dport"]) and e["netns"] == netns
            and e.get("kind") != "drop"]


def drop_lines(events: List[dict], port: int, netns: int) -> List[dict]:
    """The probe's drop lines about flows on ``port`` inside one namespace."""
    return [e for e in events if port in (e["sport"], e["dport"]) and e["netns"] == netns
            and e.get("kind") == "drop"]


def check_segs(total: int, delta: Dict[str, int], err_layout: bool, skipped: int = 0) -> None:
    """The probe's sum of segs against the kernel's TcpRetransSegs.

    Exact, but for one thing a kernel before 6.17 hides: its tracepoint does
    not fire for a retransmission that failed in transmit (counted in
    TcpExtTCPRetransFail too). The socket's counter still rose, so the
    socket's next line or its close line carries those segments, except when
    they came before the socket's first line, which counts its own skb. There
    the sum may fall short, by no more than what failed. ``skipped``: the
    retransmissions whose BPF runs the kernel skipped (KernelTrace.on_pid1);
    a later record of the socket carries them, unless none comes (a
    request's last SYN-ACK, a socket's last retransmission and its close
    both skipped): the sum may fall short by no more than those.
    """
    kernel, failed = delta["TcpRetransSegs"], delta.get("TcpExtTCPRetransFail", 0)
    print(f"sum(segs) {total}, TcpRetransSegs {kernel}, TcpExtTCPRetransFail {failed}, "
          f"skipped runs {skipped}")
    if err_layout or not failed:
        assert kernel - skipped <= total <= kernel, (
            f"sum(segs) {total} != TcpRetransSegs {kernel}"
            + (f" (less {skipped} skipped runs at most)" if skipped else ""))
    else:
        assert kernel - failed - skipped <= total <= kernel, (
            f"sum(segs) {total} outside TcpRetransSegs {kernel} - TcpExtTCPRetransFail {failed}"
            f" - {skipped} skipped runs")
