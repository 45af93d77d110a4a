"""Which lines the person at the node asked for (--pid, --comm, --port,
--job, --cgroup, --netns, --family, --kind, --reason), once the command line
has checked them (xctl_probe/commands/filter_options.py).

The values of one option are ORed, the options ANDed. Those the kernel can
apply before a record is reserved go there (ports, family, namespace: the
flow filter, kernel/flow_filter.py; reasons: the drop policy's NOT_ASKED;
kinds without drop leave the drop program out, and drops alone leave
the retransmission programs without records); the rest are the stream's
``keep`` (output/sink.py), which is None, and costs nothing, when no option
asks for one. This module imports no binding: the CLI builds it before
anything is loaded."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, FrozenSet, List, Optional

if TYPE_CHECKING:  # the event's module loads the binding
    from ..output.sink import Keep

# At most this many --port and --netns values: the kernel's filter has room
# for this many of each (XP_FILTER_PORTS, XP_FILTER_NETNS in bpf/record.h;
# tests/unit/test_filters.py holds the two to each other).
MAX_PORTS = 8
MAX_NETNS = 8
KINDS = ("rto", "noncongestion", "fast", "tlp", "syn", "synack", "drop")
FAMILIES = ("ipv4", "ipv6")

Test = Callable[[Any], bool]  # of a TransportDrop


@dataclass(frozen=True)
class Filters:
    """Each empty: no filter on it. ``reasons``: drop reasons as the running
    kernel names them, without SKB_DROP_REASON_ (NETFILTER_DROP)."""

    pids: FrozenSet[int] = frozenset()
    comms: FrozenSet[str] = frozenset()
    ports: FrozenSet[int] = frozenset()
    jobs: FrozenSet[str] = frozenset()
    cgroups: FrozenSet[int] = frozenset()
    netns: FrozenSet[int] = frozenset()
    families: FrozenSet[str] = frozenset()
    kinds: FrozenSet[str] = frozenset()
    reasons: FrozenSet[str] = frozenset()

    @property
    def kinds_kept(self) -> FrozenSet[str]:
        """The kinds of line that may pass: --reason keeps drop lines only."""
        if self.reasons:
            return frozenset({"drop"})
        return self.kinds

    @property
    def drops_only(self) -> bool:
        """Whether only drop lines may pass: then no socket's record is reserved."""
        return self.kinds_kept == frozenset({"drop"})

    @property
    def drops(self) -> bool:
        """Whether any drop line may pass: if not, the drop program is left out."""
        return not self.kinds_kept or "drop" in self.kinds_kept

    def keep(self) -> Optional["Keep"]:
        """What the stream keeps of each batch's lines; None when every line passes."""
        tests = _tests(self)
        if not tests:
            return None

        def keep(lines: List[Any]) -> List[Any]:
            return [line for line in lines if all(test(line) for test in tests)]

        return keep


def _tests(filters: Filters) -> List[Test]:
    """One test per option user space applies; the kernel applies ports,
    families, namespaces and reasons."""
    tests: List[Test] = []
    if filters.pids:
        tests.append(lambda line, pids=filters.pids: line.pid in pids)
    if filters.comms:
        tests.append(lambda line, comms=filters.comms: line.comm in comms)
    if filters.jobs:
        tests.append(lambda line, jobs=filters.jobs: line.job_id in jobs)
    if filters.cgroups:
        tests.append(lambda line, cgroups=filters.cgroups: line.cgroup_id in cgroups)
    kinds = filters.kinds_kept
    if kinds and kinds != frozenset(KINDS):
        tests.append(lambda line: line.kind in kinds)
    return tests
