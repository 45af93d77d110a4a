"""Each flow's drops over the last ``--window`` seconds, the ``value`` of a
drop line: counts per slice of the window (table.slice_of), so the span
counted is the window plus at most a slice. A flow is keyed by its namespace
and four-tuple (a socket's cookie may come only later in its life) and
forgotten as its FlowTable bounds it (drop_table)."""

from collections import deque
from typing import Deque

from .table import FlowTable, slice_of


class DropFlow:
    """One flow's drops: per slice of the window ``[slice number, packets]``,
    oldest first, and ``total``, their sum."""

    __slots__ = ("slices", "total")

    def __init__(self):
        self.slices: Deque[list] = deque()
        self.total = 0

    def add(self, ts_ns: int, packets: int, window_ns: int, slice_ns: int) -> int:
        """Counts ``packets`` dropped at ``ts_ns``; the flow's drops over the
        window that ends there."""
        slices = self.slices
        now = ts_ns // slice_ns
        if slices and slices[-1][0] == now:
            slices[-1][1] += packets
        else:
            slices.append([now, packets])
        self.total += packets
        oldest = (ts_ns - window_ns) // slice_ns
        while slices[0][0] < oldest:
            self.total -= slices.popleft()[1]
        return self.total


def last_dropped(flow: DropFlow) -> int:
    """The slice of the flow's latest drop."""
    return flow.slices[-1][0]


def drop_table(window_ns: int) -> FlowTable:
    """A table for DropFlows, least recently dropped forgotten first."""
    return FlowTable(window_ns, last_dropped, unit_ns=slice_of(window_ns))
