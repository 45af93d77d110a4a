"""``lost`` counts the runs of the probe's programs that the kernel skipped,
in its lines and in its stop line, as many as the kernel itself counts.

The kernel skips a run of a program when the program's tracepoint fires
again on a CPU where it is running, and counts it (``recursion_misses``). The
probe's own programs meet that seldom, and never on demand; so the probe runs
here from its object plus one program of the tests' that the kernel skips
once each time the test triggers it (lab/skipped_runs.bpf.c), through the
real command line, stream and writer, and its count is held against the
kernel's own, as bpftool reports it.
"""

import re
from typing import List

import pytest

from lab import skipped_runs
from lab.accounting import drop_lines
from lab.marks import requires_root
from lab.netns import Netns
from lab.probe import ProbeProcess
from lab.xctl_contract import check_probe_line

pytestmark = [requires_root, pytest.mark.skipif(
    not skipped_runs.can_run_here(), reason="the printing program would deadlock before 6.2")]

PORT = 9750


def test_runs_the_kernel_skipped_are_lost_records_in_lines_and_stop_line(tmp_path):
    obj = skipped_runs.build(tmp_path)
    ns = Netns()
    probe = None
    try:
        with skipped_runs.printk_event_kept():
            probe = ProbeProcess("--object", str(obj))
            programs = skipped_runs.ProbePrograms(probe.proc.pid)
            assert "lost" not in knocked(probe, ns)
            programs.make_skip(100, tmp_path)
            skipped = programs.skipped()
            assert skipped.get(skipped_runs.NESTED) == 100, skipped
            assert knocked(probe, ns)["lost"] == sum(skipped.values())
            # Skipped after the last line: only the stop line can say them.
            programs.make_skip(20, tmp_path)
            skipped = programs.skipped()
            assert skipped.get(skipped_runs.NESTED) == 120, skipped
            assert probe.stop() == 0
        assert re.fullmatch(rf"xctl-probe-ebpf: stopped after \d+ lines from \d+ records; "
                            rf"{sum(skipped.values())} records lost\n", probe.stderr_text())
    finally:
        if probe is not None:
            probe.kill()
        ns.close()


def knocked(probe: ProbeProcess, ns: Netns) -> dict:
    """A SYN to the namespace's closed port; the probe's line of its drop."""
    before = len(port_drops(probe, ns))
    ns.knock(PORT)
    assert probe.wait_for(lambda: len(port_drops(probe, ns)) > before, timeout=10)
    return port_drops(probe, ns)[-1]


def port_drops(probe: ProbeProcess, ns: Netns) -> List[dict]:
    # Only the lines that name the port are decoded: others' traffic may be many.
    mine = [check_probe_line(raw) for raw in probe.lines if str(PORT).encode() in raw]
    return drop_lines(mine, PORT, ns.inode)
