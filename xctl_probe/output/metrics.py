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

from collections import defaultdict
from typing import Callable, DefaultDict, Dict, Iterator, List, Optional

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
# A retransmission's kinds (meaning/event.py), None among them.
KINDS = frozenset(("rto", "noncongestion", "fast", "tlp", "syn", "synack", None))


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
        # The hot loop builds no tuple per line (a third of its cost): segs per
        # job (with loss false apart), then per kind, or per reason for a drop.
        # A reason is the kernel's upper-case name, never one of the kinds.
        by_job: Dict[object, DefaultDict[Optional[str], int]] = {}
        for line in lines:
            job = line.job_id if line.loss is None else (line.job_id, False)
            try:
                counts = by_job[job]
            except KeyError:
                counts = by_job[job] = defaultdict(int)
            counts[line.reason or line.kind] += line.segs
        for job, counts in by_job.items():
            loss = "true"
            if isinstance(job, tuple):
                job, loss = job[0], "false"
            label = self._job(job)
            for name, segs in counts.items():
                if name in KINDS:
                    self._child(self._segments, name or NO_KIND, label).inc(segs)
                else:
                    self._child(self._drops, "" if name == "drop" else name, loss,
                                label).inc(segs)

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
