"""Each flow's retransmission rate over the last ``--window`` seconds.

This is the event's ``value``, the figure xctl's network_stall rule compares
with 10 ("loss rate > 10%"). It comes from the socket's own lifetime counters,
which every record carries: segments retransmitted and segments sent (both
including retransmissions), read by the BPF program when the event fires.

rate = 100 * (retransmitted now - retransmitted then) / (sent now - sent then)

"then" is the newest sample this flow gave at least ``window`` ago. During a
flow's first window, before there is such a sample, "then" is the start of the
connection (counters at zero): one retransmission among thousands of segments
reads as a small fraction of a percent, never as 100%. A flow quiet for longer
than the window is measured from its last sample, so over a longer span.

Flows are keyed by the socket cookie, which the kernel never gives to
another socket, so a new flow cannot inherit an old one's samples, even when
its socket reuses the kernel memory of one that gave no close record (a
request socket, or a socket whose close the kernel did not report). Flows
are forgotten at their close record, when more than ``max_flows`` are kept
(least recently active first), and after ``max_idle`` without a record: a
flow heard again after that is measured from the start of the connection.
"""

from collections import OrderedDict, deque
from typing import Deque, Tuple

_U32 = 0xFFFFFFFF

# (ts_ns, retransmitted, sent)
Sample = Tuple[int, int, int]


# A flow silent this many windows (and at least MIN_IDLE_NS) is forgotten.
IDLE_WINDOWS = 10
MIN_IDLE_NS = 120 * 10**9


class FlowRates:
    def __init__(self, window_ns: int, max_flows: int = 65536, max_idle_ns: int = 0):
        self._window = window_ns
        # Keeping one sample per slice bounds a storming flow to about 17
        # samples; the window measured grows by at most a slice.
        self._slice = window_ns // 16
        self._max_flows = max_flows
        self._max_idle = max_idle_ns or max(IDLE_WINDOWS * window_ns, MIN_IDLE_NS)
        # Least recently active first; each flow's newest sample is at most a
        # slice older than its last record.
        self._flows: "OrderedDict[int, Deque[Sample]]" = OrderedDict()

    def __len__(self) -> int:
        return len(self._flows)

    def rate(self, flow: int, ts_ns: int, retransmitted: int, sent: int) -> float:
        """Percent of segments retransmitted over the window ending at ``ts_ns``."""
        self._forget_idle(ts_ns)
        samples = self._flows.get(flow)
        if samples is None:
            samples = self._flows[flow] = deque()
            if len(self._flows) > self._max_flows:
                self._flows.popitem(last=False)
        else:
            self._flows.move_to_end(flow)

        horizon = ts_ns - self._window
        while len(samples) >= 2 and samples[1][0] <= horizon:
            samples.popleft()
        if samples and samples[0][0] <= horizon:
            _, base_retrans, base_sent = samples[0]
        else:
            base_retrans = base_sent = 0

        if not samples or ts_ns - samples[-1][0] >= self._slice:
            samples.append((ts_ns, retransmitted, sent))

        d_retrans = (retransmitted - base_retrans) & _U32
        d_sent = (sent - base_sent) & _U32
        if d_sent == 0:
            return 100.0 if d_retrans else 0.0
        return min(100.0, 100.0 * d_retrans / d_sent)

    def _forget_idle(self, now_ns: int) -> None:
        while self._flows:
            flow, samples = next(iter(self._flows.items()))
            if now_ns - samples[-1][0] < self._max_idle:
                return
            del self._flows[flow]

    def forget(self, flow: int) -> None:
        self._flows.pop(flow, None)


def format_rate(rate: float) -> str:
    """'12.5', '0.03', '100': a decimal string, as xctl's value must be."""
    text = f"{rate:.2f}".rstrip("0").rstrip(".")
    return text or "0"
