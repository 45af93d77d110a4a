"""Per-flow state kept from record to record, bounded in number and in age.

The rate and the drop count of a flow are measured over a window in slices
of a sixteenth of it (slice_of). A flow is forgotten when it has been silent
for ``max_idle`` (IDLE_WINDOWS windows, at least MIN_IDLE_NS), looked for at
most once a slice, and, past ``max_flows``, least recently active first.
"""

from typing import Any, Callable, Dict, Hashable

# A flow silent this many windows (and at least MIN_IDLE_NS) is forgotten.
IDLE_WINDOWS = 10
MIN_IDLE_NS = 120 * 10**9
MAX_FLOWS = 65536


def slice_of(window_ns: int) -> int:
    """The slice of a window: a sixteenth, so that a flow keeps about 17
    samples or counts and the span measured is the window plus at most a slice."""
    return max(window_ns // 16, 1)


class FlowTable:
    """Flows by key. ``active(flow)`` is when the flow was last active, in
    units of ``unit_ns`` nanoseconds."""

    def __init__(self, window_ns: int, active: Callable[[Any], int], unit_ns: int = 1,
                 max_flows: int = MAX_FLOWS, max_idle_ns: int = 0):
        self._flows: Dict[Hashable, Any] = {}
        # The flow for a key, or None: the dict's own method, so that the
        # per-record lookup is one C call.
        self.get = self._flows.get
        self._active = active
        self._unit = unit_ns
        self._sweep_ns = slice_of(window_ns)
        self._max_flows = max_flows
        self._max_idle = max_idle_ns or max(IDLE_WINDOWS * window_ns, MIN_IDLE_NS)
        self._swept_at = 0

    def add(self, key: Hashable, flow: Any) -> Any:
        """Keeps ``flow`` under ``key``, making room first if full; returns it."""
        if len(self._flows) >= self._max_flows:
            self._evict()
        self._flows[key] = flow
        return flow

    def forget(self, key: Hashable) -> None:
        self._flows.pop(key, None)

    def forget_idle(self, now_ns: int) -> None:
        """Forgets the flows silent for longer than ``max_idle`` at ``now_ns``;
        looks at most once a slice."""
        if now_ns - self._swept_at < self._sweep_ns:
            return
        self._swept_at = now_ns
        newest_idle = (now_ns - self._max_idle) // self._unit
        active = self._active
        for key in [key for key, flow in self._flows.items() if active(flow) <= newest_idle]:
            del self._flows[key]

    def _evict(self) -> None:
        """Makes room by forgetting the least recently active quarter at once,
        so a churn of new flows pays for a sort only every so many flows."""
        flows, active = self._flows, self._active
        by_age = sorted(flows, key=lambda key: active(flows[key]))
        for key in by_age[: max(1, len(by_age) // 4)]:
            del flows[key]
