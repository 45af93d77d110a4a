"""Probes with filters beside one without, on the same kernel events: what
each kept (its lines, contract-checked), and how many records its ring
received (the last stderr line), so a test can show both that a filter
keeps exactly the matching lines and that the kernel never recorded the
rest."""

import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Sequence

from .probe import ProbeProcess
from .xctl_contract import check_probe_line

PIPE_BYTES = 1 << 20
STOPPED = re.compile(r"stopped after (\d+) lines from (\d+) records; (\d+) records lost")


@dataclass(frozen=True)
class Kept:
    lines: List[dict]
    records: int  # taken from the probe's ring
    lost: int
    err_layout: bool  # the 6.17+ tracepoint (lab.accounting.check_segs)


def record_keys(lines: List[dict]) -> Counter:
    """What lines of the same records have in common whichever probe made
    them (not ts, value, owner: those depend on when the probe looked)."""
    return Counter((e["entity_id"], e["netns"], e.get("kind"), e.get("state"), e["segs"],
                    e.get("reason"), e.get("cgroup_id")) for e in lines)


def segs_by_flow(lines: List[dict]) -> Counter:
    """Σsegs per flow: exact in every probe, whichever records the kernel
    skipped for one of them (the close record carries their segments) and
    whatever lines one merged."""
    by_flow: Counter = Counter()
    for e in lines:
        by_flow[e["entity_id"], e["netns"], e.get("cgroup_id")] += e["segs"]
    return by_flow


def retransmissions(lines: List[dict], netns: int) -> List[dict]:
    return [e for e in lines if e["netns"] == netns and e.get("kind") != "drop"]


def drops_by_port(lines: List[dict], netns: int) -> Dict[int, int]:
    """Packets dropped in ``netns`` by local port: records and the kernel's tallies
    of a flood (which each probe splits its own way) alike."""
    by_port: Counter = Counter()
    for e in lines:
        if e["netns"] == netns and e.get("kind") == "drop":
            by_port[e["sport"]] += e["segs"]
    return dict(by_port)


class Probes:
    """An unfiltered probe and one per argument list, started before the traffic."""

    def __init__(self, *filtered: Sequence[str]):
        # A pipe of 1 MiB holds seconds of a storm's lines: no probe falls
        # behind the tests' reader threads (which several probes and the
        # traffic share two CPUs with) and merges lines.
        self.all = ProbeProcess(pipe_bytes=PIPE_BYTES)
        self.filtered: List[ProbeProcess] = []
        try:
            for args in filtered:
                self.filtered.append(ProbeProcess(*args, pipe_bytes=PIPE_BYTES))
        except BaseException:
            self.kill()
            raise

    def stop(self) -> List[Kept]:
        """What each kept, the unfiltered probe first."""
        time.sleep(0.5)
        kept = []
        for probe in [self.all, *self.filtered]:
            assert probe.stop() == 0
            said = probe.stderr_text()
            stopped = STOPPED.search(said)
            assert stopped, said
            kept.append(Kept([check_probe_line(raw) for raw in probe.lines],
                             int(stopped.group(2)), int(stopped.group(3)), probe.err_layout))
        return kept

    def kill(self) -> None:
        for probe in [self.all, *self.filtered]:
            probe.kill()
