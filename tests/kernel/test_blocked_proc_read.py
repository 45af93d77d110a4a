"""A /proc read that blocks holds up lines, never the draining of the kernel's ring.

The probe runs in a mount namespace of its own, where a FIFO is bound over
the /proc/PID/comm of one storm process: the probe's first read of it (to
name the owner of that process's socket) blocks in open() until the test
opens the FIFO's other end, as a read of a process in D state would. The
probe's code is not touched: it opens the very path it opens on any node.
Its ring is the default (1 MiB, about 6,500 records), and the storm (eight
connections, one data packet in five lost, MTU 1500) makes about twice that
while the read blocks (8 s). A probe that drained the ring on the thread
that reads /proc would find it full and lose records; this one drains it on
a thread that never reads /proc, so its lines come only once the read
returns, and not one record finds the ring full.

Other probes' storms on the machine reach this probe's ring too. Heavy
enough, they fill the hand-over to the line thread (BOUND_RECORDS) while
the read blocks, and then the ring, as designed: the test then asks that
the drain took the hand-over's worth of records while the read blocked.
"""

import errno
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import List, Optional

from xctl_probe.kernel.loader import DEFAULT_RING_BYTES
from xctl_probe.kernel.ringbuf import RECORD_SIZE
from xctl_probe.output.handover import BOUND_RECORDS

from lab.accounting import check_segs, flow_lines
from lab.marks import requires_root
from lab.netns import Netns
from lab.probe import ProbeProcess
from lab.programs import probe_map
from lab.skipped_runs import ProbePrograms
from lab.xctl_contract import check_probe_line

pytestmark = [requires_root]

BLOCKED_PORT = 9760
PORTS = tuple(range(BLOCKED_PORT, BLOCKED_PORT + 8))
# The ring's header per record, beside the record.
RING_RECORDS = DEFAULT_RING_BYTES // (RECORD_SIZE + 8)
BLOCKED_S = 8
STORM_S = 10
# The kernel's function where open() of a FIFO waits for the other end.
FIFO_WAIT = "wait_for_partner"


def test_a_blocked_proc_read_delays_lines_and_loses_no_record(tmp_path):
    fifo = tmp_path / "comm"
    os.mkfifo(fifo)
    ns = Netns(mtu=1500)
    probe = None
    senders = []
    try:
        for port in PORTS:
            ns.drop_one_in(5, port, data_only=True)
            senders.append(ns.spawn("--port", str(port), "--seconds", str(STORM_S), "--wait-go"))
        pid = json.loads(senders[0].stdout.readline())["pid"]
        probe = ProbeProcess(prefix=("unshare", "--mount", "--propagation", "private"))
        in_probe_ns = ["nsenter", "-t", str(probe.proc.pid), "-m"]
        subprocess.run([*in_probe_ns, "mount", "--bind", str(fifo), f"/proc/{pid}/comm"],
                       check=True)
        before = ns.counters()
        go_ms = time.time() * 1000
        for sender in senders:
            sender.stdin.write("go\n")
            sender.stdin.flush()
        time.sleep(BLOCKED_S)
        waiting = fifo_waiters(probe.proc.pid)
        subprocess.run([*in_probe_ns, "umount", "--lazy", f"/proc/{pid}/comm"], check=True)
        released_ms = time.time() * 1000
        assert reader_was_waiting(fifo), "the probe never opened the storm's comm"
        time.sleep(STORM_S - BLOCKED_S)
        ns.lift_loss()
        for sender in senders:
            sender.communicate(timeout=300)
        for port in PORTS:
            ns.wait_settled(port)
        after = ns.counters()
        time.sleep(0.5)
        [ring_full] = probe_map(probe.proc.pid, "lost_records").values()
        skipped = sum(ProbePrograms(probe.proc.pid).skipped().values())
        assert probe.stop() == 0
        stderr = probe.stderr_text()

        events = [check_probe_line(raw) for raw in probe.lines]
        lines = [e for port in PORTS for e in flow_lines(events, port, ns.inode)]
        blocked_flow_early = [ms for ms, e in zip(probe.arrived_ms, events)
                              if ms < released_ms and flow_lines([e], BLOCKED_PORT, ns.inode)]
        drained_while_blocked = sum(e.get("count", 1) for e in events
                                    if go_ms <= e["ts"] < released_ms)
        ours_while_blocked = sum(e.get("count", 1) for e in lines
                                 if go_ms <= e["ts"] < released_ms)
        delta = {k: after[k] - before.get(k, 0) for k in after}
        print(f"{drained_while_blocked} records made while the read blocked "
              f"({ours_while_blocked} of the storm), {RING_RECORDS} fit the ring; threads "
              f"waiting on the FIFO: {waiting}; "
              f"{len(lines)} lines of the storm, sum(segs) {sum(e['segs'] for e in lines)}, "
              f"TcpRetransSegs {delta['TcpRetransSegs']}; ring full {ring_full}, runs skipped "
              f"{skipped}; {stderr.strip()}")
        if waiting is not None:
            assert waiting and probe.proc.pid not in waiting, (
                "the read blocked the main thread, the one that drains the ring")
        assert not blocked_flow_early, "lines of the blocked owner came before the read returned"
        assert drained_while_blocked > RING_RECORDS
        assert ring_full == 0 or drained_while_blocked >= BOUND_RECORDS
        # Every record lost is said (the ring's, the runs the kernel skipped):
        # read just before the stop, they may only have grown by it.
        lost = re.search(r"; (\d+) records lost", stderr)
        assert lost and int(lost[1]) >= ring_full + skipped, stderr
        check_segs(sum(e["segs"] for e in lines), delta, probe.err_layout)
    finally:
        if probe is not None:
            probe.kill()
        for sender in senders:
            if sender.poll() is None:
                sender.kill()
                sender.wait()
        ns.close()


def fifo_waiters(pid: int) -> Optional[List[int]]:
    """The threads of ``pid`` waiting in open() of a FIFO; None where the
    kernel hides where threads wait."""
    waiting = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        wchan = (task / "wchan").read_text()
        if wchan == "0":
            return None
        if wchan == FIFO_WAIT:
            waiting.append(int(task.name))
    return waiting


def reader_was_waiting(fifo: Path) -> bool:
    """Opens the FIFO's writing end, which lets a reader's open() return, and
    gives it an end of file; False if no reader was waiting."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return False
        raise
    os.write(fd, b"storm\n")
    os.close(fd)
    return True
