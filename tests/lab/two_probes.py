"""The probe as xctl runs it (drops that are a loss) and one with --drops
all, side by side on the same kernel events, and what each made of a test's
flows: its drop lines, and the drop records its program put in its ring
(the probe's own counters, map drop_records, read with bpftool while it
runs: they count every namespace, not only the test's), and the runs of its
drop program the kernel skipped (a drop inside a drop on one CPU: the probe
counts them as lost)."""

import time
from dataclasses import dataclass
from typing import Collection, Dict, List, Optional, Tuple

from xctl_probe.kernel.drop_policy import COUNTS_MAP
from xctl_probe.kernel.loader import DROP_PROGRAM

from .accounting import drop_lines
from .probe import ProbeProcess
from .programs import probe_map
from .skipped_runs import ProbePrograms
from .xctl_contract import check_probe_line


@dataclass(frozen=True)
class Seen:
    """A probe's drop lines about the test's port in its namespace, and its
    drop records of the whole machine: {reason number: [records by state]}."""
    lines: List[dict]
    records: Dict[int, List[int]]
    skipped: int

    def lines_of(self, names: Collection[str]) -> List[dict]:
        return [line for line in self.lines if line["reason"] in names]

    def records_of(self, codes: Collection[int], states: Optional[Collection[int]] = None
                   ) -> int:
        """Records of the reasons numbered ``codes``, of sockets in ``states`` (all if None)."""
        return sum(count for code in codes
                   for state, count in enumerate(self.records[code])
                   if states is None or state in states)


class TwoProbes:
    """Both probes, started one after the other before the test's traffic."""

    def __init__(self):
        self.default = ProbeProcess()
        try:
            self.everything = ProbeProcess("--drops", "all")
        except BaseException:
            self.default.kill()
            raise

    def stop(self, port: int, netns: int) -> Tuple[Seen, Seen]:
        """What the default probe and the --drops all probe saw, in that order."""
        time.sleep(0.5)
        probes = (self.default, self.everything)
        records = [{code: counts["by_state"]
                    for code, counts in probe_map(probe.proc.pid, COUNTS_MAP).items()}
                   for probe in probes]
        skipped = [ProbePrograms(probe.proc.pid).skipped().get(DROP_PROGRAM, 0)
                   for probe in probes]
        assert [probe.stop() for probe in probes] == [0, 0]
        return tuple(Seen(drop_lines([check_probe_line(raw) for raw in probe.lines], port,
                                     netns), counts, runs_skipped)
                     for probe, counts, runs_skipped in zip(probes, records, skipped))

    def kill(self) -> None:
        self.default.kill()
        self.everything.kill()
