"""Each flow's retransmission rate over the last ``--window`` seconds.

This is the event's ``value``, the figure xctl's network_stall rule compares
with 10 ("loss rate > 10%"). It comes from the socket's own lifetime counters,
which every record carries: segments retransmitted and segments sent (both
including retransmissions), read by the BPF program when the event fires.

rate = 100 * (retransmitted now - retransmitted then) / (sent now - sent then)

"then" is the newest sample this flow gave at least ``window`` ago. A flow
keeps one sample per slice of the window (a sixteenth) and moves "then" when
it takes one, so the span measured is the window plus at most a slice. During a
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

A Flow also holds what the line maker keeps for it (``shared``): the rate
and the rest of a flow's per-record work are on the per-record path, so the
flow is looked up once per record, and the common case (a sample taken less
than a slice ago) is a few attribute reads.
"""

from collections import deque
from typing import Any, Deque, Dict, Tuple

_U32 = 0xFFFFFFFF

# (ts_ns, retransmitted, sent)
Sample = Tuple[int, int, int]

# A flow silent this many windows (and at least MIN_IDLE_NS) is forgotten.
IDLE_WINDOWS = 10
MIN_IDLE_NS = 120 * 10**9
MAX_FLOWS = 65536


def _hundredths_text(hundredths: int) -> str:
    whole, fraction = divmod(hundredths, 100)
    return f"{whole}.{fraction:02d}".rstrip("0").rstrip(".")


# Every value a rate can take, in hundredths of a percent, made once:
# formatting is a large share of a line's cost.
RATE_TEXT = [_hundredths_text(h) for h in range(10001)]


def format_rate(rate: float) -> str:
    """'12.5', '0.03', '100': a decimal string with at most two decimals
    (rounded half up), as xctl's value must be."""
    return RATE_TEXT[int(rate * 100 + 0.5)]


class Flow:
    __slots__ = ("samples", "sampled_at", "base_retrans", "base_sent", "shared")

    def __init__(self):
        self.samples: Deque[Sample] = deque()
        self.sampled_at = 0
        self.base_retrans = 0
        self.base_sent = 0
        self.shared: Any = None

    def percent(self, retransmitted: int, sent: int) -> float:
        d_retrans = (retransmitted - self.base_retrans) & _U32
        d_sent = (sent - self.base_sent) & _U32
        if d_sent == 0:
            return 100.0 if d_retrans else 0.0
        return min(100.0, 100.0 * d_retrans / d_sent)

    def value(self, retransmitted: int, sent: int) -> str:
        """The rate as ``value``: percent, rounded half up to two decimals."""
        d_retrans = (retransmitted - self.base_retrans) & _U32
        d_sent = (sent - self.base_sent) & _U32
        if d_sent <= d_retrans:
            return "100" if d_retrans else "0"
        return RATE_TEXT[(d_retrans * 20000 + d_sent) // (2 * d_sent)]


class FlowRates:
    def __init__(self, window_ns: int, max_flows: int = MAX_FLOWS, max_idle_ns: int = 0):
        self.window = window_ns
        # Keeping one sample per slice bounds a storming flow to about 17
        # samples; the window measured grows by at most a slice.
        self.slice = max(window_ns // 16, 1)
        self._max_flows = max_flows
        self._max_idle = max_idle_ns or max(IDLE_WINDOWS * window_ns, MIN_IDLE_NS)
        self._flows: Dict[int, Flow] = {}
        # The flow for a cookie, or None: the dict's own method, so that the
        # per-record lookup is one C call.
        self.get = self._flows.get
        self._swept_at = 0

    def __len__(self) -> int:
        return len(self._flows)

    def __contains__(self, flow: int) -> bool:
        return flow in self._flows

    def sample(self, flow: int, ts_ns: int, retransmitted: int, sent: int) -> Flow:
        """The flow, with a sample taken at ``ts_ns`` and its base moved to
        the newest sample at least a window older; a new flow if unknown."""
        known = self._flows.get(flow)
        if known is None:
            if len(self._flows) >= self._max_flows:
                self._evict()
            known = self._flows[flow] = Flow()
        samples = known.samples
        horizon = ts_ns - self.window
        while len(samples) >= 2 and samples[1][0] <= horizon:
            samples.popleft()
        if samples and samples[0][0] <= horizon:
            _, known.base_retrans, known.base_sent = samples[0]
        else:
            known.base_retrans = known.base_sent = 0
        samples.append((ts_ns, retransmitted, sent))
        known.sampled_at = ts_ns
        return known

    def flow(self, flow: int, ts_ns: int, retransmitted: int, sent: int) -> Flow:
        """The flow, ready to measure a record at ``ts_ns``."""
        known = self._flows.get(flow)
        if known is None or ts_ns - known.sampled_at >= self.slice:
            known = self.sample(flow, ts_ns, retransmitted, sent)
        return known

    def rate(self, flow: int, ts_ns: int, retransmitted: int, sent: int) -> float:
        """Percent of segments retransmitted over the window ending at ``ts_ns``."""
        return self.flow(flow, ts_ns, retransmitted, sent).percent(retransmitted, sent)

    def _evict(self) -> None:
        """Makes room by forgetting the least recently sampled quarter at once,
        so a churn of new flows pays for a sort only every so many flows."""
        by_age = sorted(self._flows.items(), key=lambda item: item[1].sampled_at)
        for flow, _ in by_age[: max(1, len(by_age) // 4)]:
            del self._flows[flow]

    def forget_idle(self, now_ns: int) -> None:
        """Forgets the flows silent for longer than ``max_idle`` at ``now_ns``;
        looks at most once a slice."""
        if now_ns - self._swept_at < self.slice:
            return
        self._swept_at = now_ns
        idle = [flow for flow, known in self._flows.items()
                if now_ns - known.sampled_at >= self._max_idle]
        for flow in idle:
            del self._flows[flow]

    def forget(self, flow: int) -> None:
        self._flows.pop(flow, None)


class DropFlow:
    """One flow's drops: per slice of the window ``[slice number, packets]``,
    oldest first, and ``total``, their sum. ``shared`` is the line maker's."""

    __slots__ = ("slices", "total", "shared")

    def __init__(self):
        self.slices: Deque[list] = deque()
        self.total = 0
        self.shared: Any = None


class DropCounts:
    """Each flow's drops over the last ``window``, the ``value`` of a drop
    line: counts per slice of the window (a sixteenth), so the span counted
    is the window plus at most a slice. Flows are forgotten after ``max_idle``
    without a drop and, past ``max_flows``, least recently dropped first."""

    def __init__(self, window_ns: int, max_flows: int = MAX_FLOWS, max_idle_ns: int = 0):
        self._window = window_ns
        self._slice = max(window_ns // 16, 1)
        self._max_flows = max_flows
        self._max_idle = max_idle_ns or max(IDLE_WINDOWS * window_ns, MIN_IDLE_NS)
        self._flows: Dict[Any, DropFlow] = {}
        self._swept_at = 0

    def __len__(self) -> int:
        return len(self._flows)

    def add(self, flow, ts_ns: int, packets: int = 1) -> DropFlow:
        """Counts ``packets`` dropped at ``ts_ns``; the flow, whose ``total``
        is its drops over the window."""
        self._forget_idle(ts_ns)
        known = self._flows.get(flow)
        if known is None:
            if len(self._flows) >= self._max_flows:
                by_age = sorted(self._flows, key=lambda key: self._flows[key].slices[-1][0])
                for key in by_age[: max(1, len(by_age) // 4)]:
                    del self._flows[key]
            known = self._flows[flow] = DropFlow()
        slices = known.slices
        now = ts_ns // self._slice
        if slices and slices[-1][0] == now:
            slices[-1][1] += packets
        else:
            slices.append([now, packets])
        known.total += packets
        oldest = (ts_ns - self._window) // self._slice
        while slices[0][0] < oldest:
            known.total -= slices.popleft()[1]
        return known

    def _forget_idle(self, now_ns: int) -> None:
        if now_ns - self._swept_at < self._slice:
            return
        self._swept_at = now_ns
        newest_idle = (now_ns - self._max_idle) // self._slice
        for flow in [f for f, known in self._flows.items() if known.slices[-1][0] <= newest_idle]:
            del self._flows[flow]
