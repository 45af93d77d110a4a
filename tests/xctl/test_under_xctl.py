"""The probe judged by xctl's own code, not by our reading of it.

The harness (tests/xctl/harness, built by `make test-xctl`) starts the
installed probe through xctl's unmodified SubprocessProbe exactly as
`ark run --probe PATH` does, feeds its events to xctl's StateGraph and
evaluates xctl's RuleEngine with xctl's rules/, then reports what xctl
parsed, what it rejected and which rules matched.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.marks import requires_root
from lab.netns import Netns
from lab.probe import PROBE, probe_env
from lab.programs import wait_attached_programs, wait_programs_gone

pytestmark = [requires_root, pytest.mark.xctl]

REPO = Path(__file__).resolve().parents[2]
XCTL_SRC = Path(os.environ.get("XCTL_SRC", REPO.parent / "shared" / "xctl-src"))
HARNESS = Path(os.environ.get(
    "XCTL_HARNESS", REPO / "build" / "out" / "xctl-harness" / "release" / "xctl-harness"))


@pytest.fixture(scope="module")
def harness():
    if not HARNESS.is_file():
        pytest.fail(f"no xctl harness at {HARNESS}: build it with `make test-xctl`")
    return HARNESS


def run_under_xctl(harness, probe, until) -> dict:
    """Starts ``probe`` under the harness, calls ``until()`` once the probe's
    programs are attached, then stops xctl as a supervisor would (SIGTERM)
    and returns its report."""
    env = probe_env()
    # xctl runs `python3 PATH` with the python3 first on its PATH: not this venv's.
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if Path(p).resolve() != Path(sys.executable).parent.resolve())
    proc = subprocess.Popen([str(harness), str(probe), str(XCTL_SRC / "rules")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        until()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode(errors="replace")
    return json.loads(out.decode().splitlines()[-1])


def test_xctl_parses_every_line_of_a_storm_and_fires_network_stall(harness):
    ns = Netns()
    try:
        ns.drop_one_in(5, 9600)

        def storm():
            wait_attached_programs()
            storm.sender = ns.traffic(9600, 4.0)
            ns.wait_settled(9600)

        report = run_under_xctl(harness, PROBE, storm)
    finally:
        ns.close()
    print(json.dumps({k: v for k, v in report.items() if k != "waits_on"}))
    assert report["parsed"] > 0 and report["events_by_type"] == {
        "transport.drop": report["parsed"]}
    assert report["rejected"] == 0 and report["read_errors"] == 0
    assert report["failed_exits"] == 0
    sender = f"pid-{storm.sender['pid']}"
    flow = f"network-127.0.0.1-127.0.0.1-{storm.sender['port']}-9600"
    assert [sender, flow] in report["waits_on"], report["waits_on"][:10]
    assert all(src.startswith("pid-") and dst.startswith("network-")
               for src, dst in report["waits_on"])
    assert "legacy.network_stall" in report["matched"]
    # xctl does not stop its probe: the probe ends by itself once its stdout closes.
    wait_programs_gone()


FAKE_PROBE = r"""
import select, sys, time
out = sys.stdout.buffer
out.write(b'{"ts": 1, "event_type": "transport.drop", "entity_id": "network-a-b-1-2", "pid": 7, "value": "50"}\n')
out.write(b'{"ts": 1.0, "event_type": "transport.drop", "entity_id": "x", "value": "1"}\n')
out.write(b'{"ts": 2, "event_type": "net.drop", "entity_id": "x", "value": "1"}\n')
out.flush()
time.sleep(0.5)
out.write(b'{"ts": 3, "event_type": "transport.drop", "entity_id": "x", "value": "\xff"}\n')
out.flush()
# Alive until xctl goes away, so that it is not restarted meanwhile.
poller = select.poll()
poller.register(1, 0)
poller.poll(30_000)
"""


def test_the_harness_counts_what_xctl_rejects(harness, tmp_path):
    """So that the 0 above means something: lines xctl refuses are counted,
    and invalid UTF-8 shows as the read error that ends xctl's reading."""
    fake = tmp_path / "fake_probe.py"
    fake.write_text(FAKE_PROBE)
    report = run_under_xctl(harness, fake, lambda: time.sleep(2.0))
    assert (report["parsed"], report["rejected"], report["read_errors"]) == (1, 2, 1)
    assert report["waits_on"] == [["pid-7", "network-a-b-1-2"]]
