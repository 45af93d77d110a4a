"""The job from a socket's cgroup: paths as Slurm and Kubernetes lay them
out, a cgroup tree made by the test, and on the real kernel a process in a
job_4242 cgroup with no SLURM_JOB_ID, while it runs and after it exited."""

import os
import subprocess
import sys
import time
import uuid

import pytest

from conftest import requires_root
from netlab import TESTS, Netns, ProbeProcess, flow_lines, merged_lines, remove_cgroups
from xctl_contract import check_probe_line
from xctl_probe.jobs import CgroupJobs, cgroup2_root, job_of_path

POD = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


@pytest.mark.parametrize("path,job", [
    ("/system.slice/slurmstepd.scope/job_4242/step_0/user/task_0", "4242"),
    ("/slurm/uid_1000/job_77", "77"),
    (f"/kubepods/burstable/pod{POD}/0123abcd", POD),
    ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
     f"{POD.replace('-', '_')}.slice/cri-containerd-0123.scope", POD),
    ("/user.slice/user-1000.slice/session-2.scope", None),
    ("/system.slice/job_runner.service", None),
])
def test_the_job_a_path_names(path, job):
    assert job_of_path(path) == job


def test_ids_are_found_by_walking_the_tree_and_kept(tmp_path):
    step = tmp_path / "system.slice" / "slurmstepd.scope" / "job_4242" / "step_0"
    step.mkdir(parents=True)
    other = tmp_path / "user.slice"
    other.mkdir()
    step_id = os.stat(step).st_ino
    jobs = CgroupJobs(root=tmp_path, refresh_s=3600)
    assert jobs.job(step_id) == "4242"
    assert jobs.job(os.stat(other).st_ino) is None
    # An id not seen on the last walk: no new walk before refresh_s.
    late = tmp_path / "system.slice" / "slurmstepd.scope" / "job_5" / "step_0"
    late.mkdir(parents=True)
    assert jobs.job(os.stat(late).st_ino) is None
    assert CgroupJobs(root=tmp_path).job(os.stat(late).st_ino) == "5"
    # The answer stays once found, even when the cgroup is gone.
    step.rmdir()
    assert jobs.job(step_id) == "4242"


@pytest.fixture
def slurm_cgroup():
    root = cgroup2_root()
    if root is None:
        pytest.skip("no cgroup2 hierarchy mounted")
    base = root / f"xpt-slurm-{uuid.uuid4().hex[:8]}"
    path = base / "job_4242" / "step_0"
    path.mkdir(parents=True)
    yield path
    remove_cgroups(path, path.parent, base)


@requires_root
@pytest.mark.kernels
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
             "ip", "netns", "exec", ns.name, sys.executable, str(TESTS / "traffic.py"),
             "--port", str(port), "--seconds", "2"],
            capture_output=True, text=True, check=True, env=env).stdout
        sender = merged_lines(out)
        ns.wait_settled(port)
        time.sleep(0.5)
        assert probe.stop() == 0
        events = flow_lines([check_probe_line(raw) for raw in probe.lines], port, ns.inode)
    finally:
        probe.kill()
        ns.close()
    assert events
    assert all(e["job_id"] == "4242" and e["cgroup_id"] == os.stat(slurm_cgroup).st_ino
               for e in events), events[:3]
    assert any(e.get("pid") == sender["pid"] for e in events)
    # The process has exited: its cgroup still names the job.
    with pytest.raises(ProcessLookupError):
        os.kill(sender["pid"], 0)
    assert CgroupJobs().job(events[0]["cgroup_id"]) == "4242"
