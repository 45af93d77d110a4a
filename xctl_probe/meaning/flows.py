"""Each flow's retransmission rate over the last ``--window`` seconds.

This is the event's ``value``, the figure xctl's network_stall rule compares
with 10 ("loss rate > 10%"). It comes from the socket's own lifetime counters,
which every record carries: segments retransmitted and segments sent (both
including retransmissions), read by the BPF program when the event fires.

rate = 100 * (retransmitted now - retransmitted then) / (sent now - sent then)

"then" is the newest sample this flow gave at least ``window`` ago. A flow
keeps one sample per slice of the window (table.slice_of) and moves "then"
when it takes one, so the span measured is the window plus at most a slice.
During a flow's first window, before there is such a sample, "then" is the
start of the connection (counters at zero): one retransmission among
thousands of segments reads as a small fraction of a percent, never as 100%.
A flow quiet for longer than the window is measured from its last sample, so
over a longer span.

Flows are keyed by the socket cookie, which the kernel never gives to
another socket, so a new flow cannot inherit an old one's samples, even when
its socket reuses the kernel memory of one that gave no close record (a
request socket, or a socket whose close the kernel did not report). Flows
are forgotten at their close record and as their FlowTable bounds them
(rate_table): a flow heard again after that is measured from the start of
the connection.
"""

from collections import deque
from operator import attrgetter
from typing import Deque, Tuple

from .table import FlowTable

# (ts_ns, retransmitted, sent)
Sample = Tuple[int, int, int]


def _hundredths_text(hundredths: int) -> str:
    whole, fraction = divmod(hundredths, 100)
    return f"{whole}.{fraction:02d}".rstrip("0").rstrip(".")


# Every value a rate can take, in hundredths of a percent, made once:
# formatting is a large share of a line's cost.
RATE_TEXT = [_hundredths_text(h) for h in range(10001)]


def rate_value(d_retrans: int, d_sent: int) -> str:
    """``value`` for a flow that retransmitted ``d_retrans`` of the ``d_sent``
    segments it sent over the window: the percent, rounded half up to two
    decimals ('12.5', '0.03'); '100' when it sent no more than it
    retransmitted, '0' when it did neither."""
    if d_sent <= d_retrans:
        return "100" if d_retrans else "0"
    return RATE_TEXT[(d_retrans * 20000 + d_sent) // (2 * d_sent)]


class Flow:
    """One flow's samples and the counters the rate is measured from (its base)."""

    __slots__ = ("samples", "sampled_at", "base_retrans", "base_sent")

    def __init__(self):
        self.samples: Deque[Sample] = deque()
        self.sampled_at = 0
        self.base_retrans = 0
        self.base_sent = 0

    def sample(self, ts_ns: int, retransmitted: int, sent: int, window_ns: int) -> None:
        """Takes a sample at ``ts_ns`` and moves the base to the newest sample
        at least a window older (the start of the connection if none)."""
        samples = self.samples
        horizon = ts_ns - window_ns
        while len(samples) >= 2 and samples[1][0] <= horizon:
            samples.popleft()
        if samples and samples[0][0] <= horizon:
            _, self.base_retrans, self.base_sent = samples[0]
        else:
            self.base_retrans = self.base_sent = 0
        samples.append((ts_ns, retransmitted, sent))
        self.sampled_at = ts_ns


def rate_table(window_ns: int) -> FlowTable:
    """A table for Flows, least recently sampled forgotten first."""
    return FlowTable(window_ns, attrgetter("sampled_at"))
