"""The job from a socket's cgroup, or from its owner's: paths as Slurm and
Kubernetes lay them out, a cgroup tree made by the test, a process's cgroup
and environment in a /proc made by the test. The real kernel's side is
tests/kernel/test_job_ids.py."""

import os

import pytest

from xctl_probe.context.jobs import CgroupJobs, job_of_path
from xctl_probe.context.processes import Processes

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




@pytest.mark.parametrize("cgroup,environ,job", [
    # The process's cgroup names the job as a socket's would, before its environment.
    (b"0::/system.slice/slurmstepd.scope/job_4242/step_0/user/task_0\n", b"SLURM_JOB_ID=99\0",
     "4242"),
    (f"0::/kubepods/burstable/pod{POD}/0123abcd\n".encode(), b"", POD),
    # cgroup v1: one line per hierarchy, the first that names a job.
    (b"12:pids:/user.slice\n4:cpu,cpuacct:/slurm/uid_1000/job_77/step_0\n0::/\n", b"", "77"),
    (b"0::/user.slice/user-1000.slice/session-2.scope\n", b"A=1\0SLURM_JOB_ID=99\0", "99"),
    (b"0::/user.slice\n", b"SLURM_JOB_ID=\0", None),
])
def test_a_process_job_from_its_cgroup_then_its_environment(tmp_path, cgroup, environ, job):
    process = tmp_path / "4321"
    process.mkdir()
    (process / "comm").write_bytes(b"trainer\n")
    (process / "cgroup").write_bytes(cgroup)
    (process / "environ").write_bytes(environ)
    owner = Processes(("SLURM_JOB_ID",), str(tmp_path), ttl=10).get(4321)
    assert (owner.pid, owner.comm, owner.job_id) == (4321, "trainer", job)
