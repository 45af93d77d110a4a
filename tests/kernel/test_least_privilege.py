"""The capability set the systemd unit grants (xctl_probe/kernel/capabilities.py),
proven both ways as a non-root uid: with exactly that set the probe streams
lines that name the right owners; without any one of them it either cannot
start (exit 3, one line) or names no owner."""

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


@pytest.mark.parametrize("missing", capabilities.LOAD)
def test_without_a_load_capability_it_exits_with_one_line(missing):
    caps = [c for c in capabilities.SERVICE if c != missing]
    assert_one_line_error(run_probe(prefix=as_nobody_with(caps)), EXIT_NO_PRIVILEGE, "CAP_BPF")


@pytest.mark.parametrize("missing", capabilities.OWNERS)
def test_without_an_owner_capability_only_the_kernel_names_owners(missing):
    """Without it no /proc/PID/fd can be read: an owner comes only from what
    the kernel remembered (the process that connected the socket, the one
    that closed it), and is never guessed."""
    caps = [c for c in capabilities.SERVICE if c != missing]
    run = run_pair(port=9645, seconds=2.0, probe={"prefix": as_nobody_with(caps)})
    owners = owner_share(run, "xpt-client", "xpt-server")
    assert run.rc == 0 and owners.events
    assert owners.wrong == [], "a pid named is the right one"
    client = [e for e in owners.events if e["sport"] != run.port]
    accepted = [e for e in owners.events if e["sport"] == run.port and e["state"] == "ESTABLISHED"]
    assert client and all(e.get("pid") == run.client_pid for e in client)
    assert accepted and all("pid" not in e for e in accepted)
