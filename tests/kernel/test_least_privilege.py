"""The capability set the systemd unit grants (xctl_probe/kernel/capabilities.py),
proven both ways as a non-root uid: with exactly that set the probe streams
lines that name the right owners, on both sides, the accepting side
included; without any one of them it cannot start (exit 3, one line). The
two capabilities the unit leaves out are what reading another user's
environment takes, for a job: with them, the owner's SLURM_JOB_ID; without,
none.

The guest kernels run the load tests too: before 6.17 a CO-RE relocation of
the object finds no type in vmlinux, which once sent libbpf to the modules'
BTF, a walk that takes CAP_SYS_ADMIN (kernel/bpf_object.py). The environment
pair stays on the host, keeping the guests' share short: what it tests is
procfs's access check on environ, not the BPF load, and it passed in the 6.1
and 6.12 guests when run there."""

import pytest

from xctl_probe.kernel import capabilities

from lab.cli import EXIT_NO_PRIVILEGE, as_nobody_with, assert_one_line_error, run_probe
from lab.marks import requires_root
from lab.scenarios import owner_share, run_pair

pytestmark = requires_root


def test_the_service_set_as_nobody_streams_with_the_right_owners():
    run = run_pair(port=9640, seconds=3.0, probe={"prefix": as_nobody_with(capabilities.SERVICE)})
    owners = owner_share(run, "xpt-client", "xpt-server")
    print(f"as nobody with {capabilities.SERVICE}: of {len(owners.events)} lines "
          f"{len(owners.right)} name the right owner, {len(owners.wrong)} a wrong one, "
          f"{len(owners.unnamed)} none")
    assert run.rc == 0 and owners.events
    assert owners.wrong == []
    assert owners.mostly_named()
    # The server's socket, accepted, is named while the server holds it: by
    # the kernel's word on who holds it, not by anything remembered at connect().
    accepted = [e for e in owners.right if e["sport"] == run.port and e["state"] == "ESTABLISHED"]
    assert accepted and {e["sport"] != run.port for e in owners.right} == {True, False}


@pytest.mark.parametrize("missing", capabilities.LOAD)
def test_without_a_load_capability_it_exits_with_one_line(missing):
    caps = [c for c in capabilities.SERVICE if c != missing]
    assert_one_line_error(run_probe(prefix=as_nobody_with(caps)), EXIT_NO_PRIVILEGE, "CAP_BPF")


@pytest.mark.parametrize("granted", [[], capabilities.ENVIRONMENT])
def test_a_job_from_the_environment_takes_the_environment_capabilities(granted):
    """The client's job is only in its environment (no cgroup names a job):
    read with the two capabilities the unit leaves out, not without them;
    its owner is named either way."""
    caps = capabilities.SERVICE + granted
    run = run_pair(port=9645, seconds=2.0, client_env={"SLURM_JOB_ID": "4343"},
                   probe={"prefix": as_nobody_with(caps)})
    owners = owner_share(run, "xpt-client", "xpt-server")
    assert run.rc == 0 and owners.events
    assert owners.wrong == [] and owners.mostly_named()
    client = [e for e in owners.right if e["sport"] != run.port]
    jobs = {e.get("job_id") for e in client}
    print(f"with {caps}: jobs of the client's lines {jobs}")
    assert client and jobs == ({"4343"} if granted else {None})
