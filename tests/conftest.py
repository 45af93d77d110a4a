"""Fixtures every kind of test may use; the lab itself is the lab package."""

import time
import uuid

import pytest

from xctl_probe.context.jobs import cgroup2_root

from lab.accounting import check_segs, flow_lines
from lab.netns import Netns
from lab.probe import ProbeProcess
from lab.scenarios import remove_cgroups
from lab.xctl_contract import check_probe_line


@pytest.fixture
def lab(request):
    """A namespace with an empty nftables input chain (table inet xpt, chain
    in) for the test's rules, and the probe running, with the options of the
    test's ``probe_args`` mark if it has one. ``finish(port)`` waits
    until the port's sockets are done, stops the probe, checks the sum of
    segs against TcpRetransSegs (check_segs) and returns (lines about the port, counter
    deltas since the probe started)."""
    ns = Netns()
    probe = None
    try:
        ns.nft("add table inet xpt",
               "add chain inet xpt in { type filter hook input priority 0; }")
        mark = request.node.get_closest_marker("probe_args")
        probe = ProbeProcess(*(mark.args if mark else ()))
        before = ns.counters()

        def finish(port):
            ns.wait_settled(port)
            after = ns.counters()
            time.sleep(0.5)
            assert probe.stop() == 0
            events = flow_lines([check_probe_line(raw) for raw in probe.lines], port, ns.inode)
            delta = {k: after[k] - before.get(k, 0) for k in after}
            check_segs(sum(e["segs"] for e in events), delta, probe.err_layout)
            return events, delta

        finish.probe = probe
        yield ns, finish
    finally:
        if probe is not None:
            probe.kill()
        ns.close()


@pytest.fixture
def job_cgroups():
    """``make(name, job, step=True)``: a cgroup job_<job> (and its step_0,
    where the path ends) of the test's own, in a directory named for
    ``name``; every one removed after the test. Skips the test without a
    cgroup2 hierarchy."""
    made = []

    def make(name: str, job: str, step: bool = True):
        root = cgroup2_root()
        if root is None:
            pytest.skip("no cgroup2 hierarchy mounted")
        base = root / f"{name}-{uuid.uuid4().hex[:8]}"
        path = base / f"job_{job}"
        if step:
            path = path / "step_0"
        path.mkdir(parents=True)
        innermost_first = [path]
        while innermost_first[-1] != base:
            innermost_first.append(innermost_first[-1].parent)
        made.append(innermost_first)
        return path

    yield make
    for directories in made:
        remove_cgroups(*directories)
