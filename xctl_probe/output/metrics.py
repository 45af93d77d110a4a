"""--metrics: the stream's counts for Prometheus, in a registry of the probe's own.

A tap on the line thread (sink.py) counts each batch's kept lines before the
sink takes them: retransmitted segments by kind and job, dropped packets by
reason, loss or not, and job. Per batch it sums into a dict, then adds each
sum once to its counter: a storm's batch is thousands of lines and a few
keys, so the cost per line is a dict update. Read when scraped, on the HTTP
server's thread: the records lost (the cumulative count the lines carry),
how full the kernel's ring buffer is, and the probe's info.

Labels stay few whatever the node runs: kind (seven values), reason (the
running kernel's drop reasons), loss, and job, capped at MAX_JOBS distinct
values: a job first seen past that is counted as OTHER_JOB. Never a flow, a
pid or a comm.
"""

from typing import Callable, Dict, Iterator, List, Optional, Tuple

from prometheus_client import CollectorRegistry, Counter, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..kernel.ring_fill import RingFill
from ..meaning.event import TransportDrop

PREFIX = "xctl_probe"
MAX_JOBS = 256
OTHER_JOB = "other"
# A line without a kind: the close record's segments, a retransmission in no
# state that names one (see meaning/event.py kind).
NO_KIND = "unknown"


class StreamMetrics:
    def __init__(self, info: Dict[str, str], max_jobs: int = MAX_JOBS):
        """``info``: the probe's own (version, kernel, layout, sockets)."""
        self.registry = CollectorRegistry(auto_describe=True)
        self._segments = Counter(
            f"{PREFIX}_retransmitted_segments",
            "TCP segments retransmitted (the lines' segs summed), by kind (unknown: none named) "
            "and job (empty: none named; other: past the first %d jobs)" % max_jobs,
            ("kind", "job"), registry=self.registry)
        self._drops = Counter(
            f"{PREFIX}_dropped_packets",
            "TCP packets the kernel dropped (the drop lines' segs summed), by the kernel's reason, "
            "loss (false: no loss, reported with --drops all) and job",
            ("reason", "loss", "job"), registry=self.registry)
        Info(PREFIX, "the probe: version, kernel release, tracepoint layout, where socket "
             "state is kept", registry=self.registry).info(info)
        self._scraped = _ReadWhenScraped()
        self.registry.register(self._scraped)
        self._max_jobs = max_jobs
        self._jobs: Dict[str, str] = {}
        self._children: Dict[tuple, object] = {}

    def read_lost(self, lost: Callable[[], int]) -> None:
        """Where the records lost so far are read at a scrape (the sink's count)."""
        self._scraped.lost = lost

    def read_ring(self, fill: RingFill) -> None:
        self._scraped.ring = fill

    def tap(self, lines: List[TransportDrop], lost_in_kernel: int) -> None:
        """One batch's kept lines, on the line thread."""
        segments: Dict[Tuple[Optional[str], Optional[str]], int] = {}
        drops: Dict[Tuple[Optional[str], Optional[bool], Optional[str]], int] = {}
        for line in lines:
            kind = line.kind
            if kind == "drop":
                key = (line.reason, line.loss, line.job_id)
                drops[key] = drops.get(key, 0) + line.segs
            else:
                key = (kind, line.job_id)
                segments[key] = segments.get(key, 0) + line.segs
        for (kind, job), count in segments.items():
            self._child(self._segments, kind or NO_KIND, self._job(job)).inc(count)
        for (reason, loss, job), count in drops.items():
            self._child(self._drops, reason or "", "false" if loss is False else "true",
                        self._job(job)).inc(count)

    def _job(self, job: Optional[str]) -> str:
        if not job:
            return ""
        label = self._jobs.get(job)
        if label is None:
            if len(self._jobs) >= self._max_jobs:
                return OTHER_JOB
            label = self._jobs[job] = job
        return label

    def _child(self, counter: Counter, *labels: str):
        key = (counter, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(*labels)
        return child


class _ReadWhenScraped:
    """What is read only when scraped."""

    def __init__(self):
        self.lost: Callable[[], int] = lambda: 0
        self.ring: Optional[RingFill] = None

    def describe(self) -> List[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            f"{PREFIX}_records_lost",
            "records lost since the probe started, as the lines' lost says: the ring buffer "
            "full, runs the kernel skipped, dropped behind a stalled reader", value=self.lost())
        if self.ring is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_ring_fill_ratio",
                "the kernel's ring buffer: bytes not yet read over its size",
                value=self.ring.fraction())
