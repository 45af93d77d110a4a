"""--metrics against the real kernel: scraped over HTTP (urllib) and parsed
by the client library's own parser, while a loss storm runs in a namespace
of the test's own, sent by a process in a job_N cgroup of the test's own, so
the job label tells the test's segments from anything else on the node."""

import os
import random
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from xctl_probe.errors import EXIT_METRICS_UNSERVED

from lab.accounting import check_segs, flow_lines
from lab.marks import requires_root
from lab.netns import LAB, Netns
from lab.probe import ProbeProcess
from lab.waits import patient
from lab.xctl_contract import check_probe_line

SEGMENTS = "xctl_probe_retransmitted_segments_total"


@pytest.fixture
def job_cgroup(job_cgroups):
    """A cgroup job_N/step_0 of the test's own: (its path, N)."""
    job = str(random.randrange(10**6, 10**7))
    return job_cgroups("xpt-metrics", job), job


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scrape(port: int):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                     headers={"Accept": "application/openmetrics-text"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return list(text_string_to_metric_families(response.read().decode()))


def job_segments(port: int, job: str) -> float:
    """The job's retransmitted segments, all kinds, as scraped now."""
    return sum(sample.value for family in scrape(port) for sample in family.samples
               if sample.name == SEGMENTS and sample.labels["job"] == job)


def storm_in(cgroup, ns: Netns, port: int, seconds: float) -> None:
    """traffic.py in the namespace, from a process put into ``cgroup`` before
    it opens a socket; the loss lifted before the flow closes."""
    sender = subprocess.Popen(
        ["sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec "$@"', "sh",
         "ip", "netns", "exec", ns.name, sys.executable, str(LAB / "traffic.py"),
         "--port", str(port), "--seconds", str(seconds)],
        stdout=subprocess.PIPE, text=True)
    time.sleep(seconds)
    ns.lift_loss()
    sender.communicate(timeout=300)
    assert sender.returncode == 0
    ns.wait_settled(port)


@requires_root
def test_the_job_s_segments_counter_rises_by_exactly_tcp_retrans_segs(job_cgroup):
    cgroup, job = job_cgroup
    metrics_port, port = free_port(), 9471
    ns = Netns()
    probe = ProbeProcess("--metrics", f"127.0.0.1:{metrics_port}")
    try:
        assert f"metrics on http://127.0.0.1:{metrics_port}/metrics" in probe.attach_line
        ns.drop_one_in(5, port)
        first = job_segments(metrics_port, job)
        before = ns.counters()
        storm_in(cgroup, ns, port, 3)
        after = ns.counters()
        # Until the probe has counted the storm's last records: two scrapes agree.
        deadline = time.monotonic() + patient(10)
        counted = job_segments(metrics_port, job)
        while time.monotonic() < deadline:
            time.sleep(0.5)
            previous, counted = counted, job_segments(metrics_port, job)
            if counted == previous:
                break
        families = {family.name: family for family in scrape(metrics_port)}
        assert probe.stop() == 0
        lines = [check_probe_line(raw) for raw in probe.lines]
    finally:
        probe.kill()
        ns.close()
    delta = {k: after[k] - before.get(k, 0) for k in after}
    rise = int(counted - first)
    assert rise == counted - first
    print(f"the job's counter rose by {rise}")
    assert first == 0
    check_segs(rise, delta, probe.err_layout)
    # The stdout lines of the job say the same.
    events = flow_lines(lines, port, ns.inode)
    assert events and all(e.get("job_id") == job for e in events)
    assert rise == sum(e["segs"] for e in events)
    # What else is served: the info, records lost (none), the ring's fill.
    [info] = families["xctl_probe"].samples
    assert info.labels["version"] and info.labels["kernel"] == os.uname().release
    assert [s.value for s in families["xctl_probe_records_lost"].samples] == [0]
    [fill] = families["xctl_probe_ring_fill_ratio"].samples
    assert 0 <= fill.value < 1


@requires_root
def test_a_taken_port_says_one_line_and_the_stream_goes_on_to_its_exit_code():
    ns = Netns()
    port = 9472
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        metrics_port = taken.getsockname()[1]
        probe = ProbeProcess("--metrics", f"127.0.0.1:{metrics_port}", read_stderr=False)
        try:
            # Up to the start-up line (ProbeProcess would pass over the one before it).
            said = []
            while not said or "attached" not in said[-1]:
                said.append(probe.proc.stderr.readline().decode())
                assert said[-1], said
            ns.drop_one_in(5, port)
            before = ns.counters()
            ns.traffic(port, 2)
            ns.wait_settled(port)
            after = ns.counters()
            time.sleep(0.5)
            rc = probe.stop()
            said = "".join(said + [probe.stderr_text()]).splitlines()
        finally:
            probe.kill()
            ns.close()
    assert rc == EXIT_METRICS_UNSERVED
    about = [line for line in said if "metrics" in line]
    assert len(about) == 1 and f"127.0.0.1:{metrics_port}" in about[0], said
    assert "in use" in about[0] and "another port" in about[0]
    # Only the start-up and stop lines besides.
    assert len(said) == 3 and "attached" in said[1] and "stopped after" in said[2], said
    events = flow_lines([check_probe_line(raw) for raw in probe.lines], port, ns.inode)
    delta = {k: after[k] - before.get(k, 0) for k in after}
    assert events
    check_segs(sum(e["segs"] for e in events), delta, "(sk, skb, err)" in said[1])
