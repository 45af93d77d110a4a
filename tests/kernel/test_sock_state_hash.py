"""The socket state of kernels before 5.12 (a hash of the probe's own, ids of
its own: bpf/sock_state.bpf.h), taken on this kernel with
XCTL_PROBE_SOCK_HELPERS=0, held to what socket-local storage gives: segments
exact, owners right on both sides, before and after close. Linux 5.10 takes
it by itself, and runs the whole selection on it (make test-kernels)."""

import json
import platform
import re

import pytest

from xctl_probe.kernel.sock_helpers import ENV

from lab.accounting import check_segs
from lab.answering import BEFORE_CLOSE, SERVER, run_answering
from lab.cli import run_probe
from lab.marks import requires_root
from lab.scenarios import by_owner, owner_share, run_pair

pytestmark = [requires_root]


@pytest.fixture
def hash_state(monkeypatch):
    monkeypatch.setenv(ENV, "0")


def described_sockets() -> dict:
    result = run_probe("describe")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["sockets"]


def test_the_kernel_decides_and_the_variable_overrides(monkeypatch):
    release = tuple(int(part) for part in re.findall(r"\d+", platform.release())[:2])
    assert described_sockets()["helpers"] is (release >= (5, 12))
    monkeypatch.setenv(ENV, "0")
    assert described_sockets() == {
        "helpers": False,
        "description": "socket state in a hash (before Linux 5.12)"}


@pytest.mark.parametrize("family", ["4", "6"])
def test_exact_and_owned_on_both_sides(hash_state, family):
    run = run_pair(port=9480 + int(family), family=family)
    assert run.rc == 0
    owners = owner_share(run, "xpt-client", "xpt-server")
    print(f"IPv{family}: of {len(owners.events)} lines, {len(owners.right)} right, "
          f"{len(owners.wrong)} wrong, {len(owners.unnamed)} unnamed")
    assert {e["sport"] == run.port for e in owners.events} == {True, False}
    assert owners.wrong == [] and owners.mostly_named()
    check_segs(sum(e["segs"] for e in owners.events), run.delta, run.err_layout)


def test_accepted_sockets_named_before_and_after_close(hash_state):
    run = run_answering(port=9490, seconds=6.0)
    assert run.rc == 0 and run.answers
    server = [e for e in run.events() if e["sport"] == run.port]
    for held in (True, False):
        share = by_owner([e for e in server if (e["state"] in BEFORE_CLOSE) == held],
                         lambda e: (run.server_pid, SERVER.decode()))
        print(f"server {'before' if held else 'after'} close: of {len(share.events)} lines "
              f"{len(share.right)} right, {len(share.wrong)} wrong, {len(share.unnamed)} none")
        assert share.events and share.wrong == [] and share.mostly_named()
    check_segs(sum(e["segs"] for e in run.events()), run.delta, run.err_layout, run.skipped)
