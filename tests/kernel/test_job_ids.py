"""A socket's job named from its cgroup on the real kernel, without the owner's environment."""

import os
import subprocess
import sys
import time

import pytest

from xctl_probe.context.jobs import CgroupJobs

from lab.accounting import drop_lines, flow_lines
from lab.btf import kernel_names_drop_reasons
from lab.marks import requires_root
from lab.netns import LAB, Netns, merged_lines
from lab.probe import ProbeProcess
from lab.xctl_contract import check_probe_line


@pytest.fixture
def slurm_cgroup(job_cgroups):
    return job_cgroups("xpt-slurm", "4242")


@requires_root
def test_a_job_4242_cgroup_names_the_job_without_the_environment(slurm_cgroup):
    ns = Netns()
    probe = ProbeProcess()
    port = 9450
    env = {k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"}
    try:
        ns.drop_one_in(5, port)
        # Into the cgroup before any socket is opened (and before `ip netns
        # exec`, which mounts a /sys without cgroups).
        out = subprocess.run(
            ["sh", "-c", f'echo $$ > {slurm_cgroup}/cgroup.procs && exec "$@"', "sh",
             "ip", "netns", "exec", ns.name, sys.executable, str(LAB / "traffic.py"),
             "--port", str(port), "--seconds", "2"],
            capture_output=True, text=True, check=True, env=env).stdout
        sender = merged_lines(out)
        ns.wait_settled(port)
        time.sleep(0.5)
        assert probe.stop() == 0
        lines = [check_probe_line(raw) for raw in probe.lines]
        events = flow_lines(lines, port, ns.inode)
        drops = drop_lines(lines, port, ns.inode)
    finally:
        probe.kill()
        ns.close()
    assert events
    assert all(e["job_id"] == "4242" and e["cgroup_id"] == os.stat(slurm_cgroup).st_ino
               for e in events), events[:3]
    # Every pid named is the sender's (0 wrong), and at least 99 % name one.
    named = [e["pid"] for e in events if "pid" in e]
    assert set(named) == {sender["pid"]} and 100 * (len(events) - len(named)) <= len(events)
    # The process has exited: its cgroup still names the job.
    with pytest.raises(ProcessLookupError):
        os.kill(sender["pid"], 0)
    assert CgroupJobs().job(events[0]["cgroup_id"]) == "4242"
    # nftables' drops of the same flows: a drop line that names the owner
    # carries its job, as a retransmission line does (where the kernel names
    # its drops).
    owned = [e for e in drops if "pid" in e]
    print(f"{len(drops)} drop lines, {len(owned)} naming an owner")
    if not kernel_names_drop_reasons():
        assert drops == []
        return
    assert owned and all(e["pid"] == sender["pid"] and e.get("job_id") == "4242"
                         for e in owned), [e for e in owned if e.get("job_id") != "4242"][:3]
