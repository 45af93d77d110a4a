"""What ``top`` shows: per flow, per process and per job, the segments
retransmitted and the packets dropped over the last ``span`` seconds.

The line thread adds each batch's lines (``add``: a dictionary update a
line, into the bucket of the line's own second); once a second the screen
asks for the view (``view``): the buckets of the last ``span`` seconds
summed per flow, then per owner and per job, each sorted by what the person
chose. A flow is what xctl tells apart (its entity in its network
namespace); its owner and job are the newest a line of it named, and its
rate the newest its retransmissions carried (``value``, over --window).
Processes and jobs show the highest rate among their flows. Memory is
bounded: past MAX_FLOWS flows in one second, further flows of that second
are tallied together as one.
"""

import threading
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

from ..meaning.event import TransportDrop

SORTS = ("segs", "drops", "rate")
MAX_FLOWS = 16384
# A flow is its entity in its network namespace; past MAX_FLOWS, this one.
FlowKey = Tuple[int, str]
OTHER_FLOWS: FlowKey = (0, "")


@dataclass
class Flow:
    """One flow over a second, or over the span."""

    segs: int = 0
    drops: int = 0
    rate: Optional[float] = None
    rate_ts: int = -1
    # The newest line, and the newest naming an owner or a job.
    line: Optional[TransportDrop] = None
    owned: Optional[TransportDrop] = None
    job: Optional[str] = None
    job_ts: int = -1

    def add(self, line: TransportDrop) -> None:
        ts = line.ts
        if line.kind == "drop":
            self.drops += line.segs
        else:
            self.segs += line.segs
            if ts >= self.rate_ts:
                self.rate, self.rate_ts = float(line.value), ts
        if self.line is None or ts >= self.line.ts:
            self.line = line
        if line.pid is not None and (self.owned is None or ts >= self.owned.ts):
            self.owned = line
        if line.job_id is not None and ts >= self.job_ts:
            self.job, self.job_ts = line.job_id, ts

    def merge(self, other: "Flow") -> None:
        self.segs += other.segs
        self.drops += other.drops
        if other.rate_ts > self.rate_ts:
            self.rate, self.rate_ts = other.rate, other.rate_ts
        if self.line is None or (other.line is not None and other.line.ts >= self.line.ts):
            self.line = other.line
        if other.owned is not None and (self.owned is None or other.owned.ts >= self.owned.ts):
            self.owned = other.owned
        if other.job_ts > self.job_ts:
            self.job, self.job_ts = other.job, other.job_ts

    @property
    def pid(self) -> Optional[int]:
        return self.owned.pid if self.owned is not None else None

    @property
    def comm(self) -> Optional[str]:
        return self.owned.comm if self.owned is not None else None


@dataclass
class Group:
    """The flows of one process, or of one job, over the span."""

    key: Tuple
    segs: int = 0
    drops: int = 0
    rate: Optional[float] = None
    flows: int = 0
    processes: set = field(default_factory=set)

    def add(self, flow: Flow) -> None:
        self.segs += flow.segs
        self.drops += flow.drops
        if flow.rate is not None and (self.rate is None or flow.rate > self.rate):
            self.rate = flow.rate
        self.flows += 1
        if flow.pid is not None:
            self.processes.add(flow.pid)


@dataclass
class View:
    """The span's flows, processes ((pid, comm); (None, None): no owner named)
    and jobs ((job,); (None,): none named), each sorted, and their totals."""

    flows: List[Tuple[FlowKey, Flow]]
    processes: List[Group]
    jobs: List[Group]
    segs: int
    drops: int


def _order(sort: str):
    """Most first by ``sort``, then by the others."""
    def key(tally) -> tuple:
        rate = -1.0 if tally.rate is None else tally.rate
        if sort == "drops":
            return (-tally.drops, -tally.segs, -rate)
        if sort == "rate":
            return (-rate, -tally.segs, -tally.drops)
        return (-tally.segs, -tally.drops, -rate)
    return key


class TopCounts:
    def __init__(self, span_s: int):
        self.span_s = span_s
        self._lock = threading.Lock()
        self._seconds: Dict[int, Dict[FlowKey, Flow]] = {}

    def add(self, lines: Iterable[TransportDrop]) -> None:
        """On the line thread: one batch's lines."""
        with self._lock:
            seconds = self._seconds
            for line in lines:
                second = line.ts // 1000
                flows = seconds.get(second)
                if flows is None:
                    flows = seconds[second] = {}
                key = (line.netns, line.entity_id)
                flow = flows.get(key)
                if flow is None:
                    if len(flows) >= MAX_FLOWS:
                        key = OTHER_FLOWS
                        flow = flows.get(key)
                    if flow is None:
                        flow = flows[key] = Flow()
                flow.add(line)

    def view(self, now_ms: int, sort: str) -> View:
        """The last ``span_s`` seconds up to ``now_ms`` (the second of now_ms
        the newest), sorted by ``sort`` (one of SORTS), most first. Older
        seconds are forgotten, and so are seconds ahead of now (the wall
        clock stepped back)."""
        now = now_ms // 1000
        first = now - self.span_s + 1
        flows: Dict[FlowKey, Flow] = {}
        with self._lock:
            for second in list(self._seconds):
                if not first <= second <= now + 1:
                    del self._seconds[second]
                    continue
                for key, tally in self._seconds[second].items():
                    total = flows.get(key)
                    if total is None:
                        total = flows[key] = Flow()
                    total.merge(tally)
        processes: Dict[Tuple, Group] = {}
        jobs: Dict[Tuple, Group] = {}
        for flow in flows.values():
            owner = (flow.pid, flow.comm)
            (processes.get(owner) or processes.setdefault(owner, Group(owner))).add(flow)
            job = (flow.job,)
            (jobs.get(job) or jobs.setdefault(job, Group(job))).add(flow)
        order = _order(sort)
        return View(
            flows=sorted(flows.items(), key=lambda item: (order(item[1]), item[0])),
            processes=sorted(processes.values(), key=lambda g: (order(g), str(g.key))),
            jobs=sorted(jobs.values(), key=lambda g: (order(g), str(g.key))),
            segs=sum(flow.segs for flow in flows.values()),
            drops=sum(flow.drops for flow in flows.values()))
