"""--interval against the real kernel: a loss storm on three flows, the
probe with --interval 1 beside one without it (the oracle: a line per
record), both on the same kernel events."""

import time

from lab.accounting import check_segs
from lab.marks import requires_root
from lab.netns import Netns, merged_lines
from lab.probe import ProbeProcess
from lab.xctl_contract import check_probe_line

PORTS = (9461, 9462, 9463)
SECONDS = 4
PIPE_BYTES = 1 << 20


def storm_lines(probe, netns):
    return [line for line in map(check_probe_line, probe.lines)
            if line["netns"] == netns and {line["sport"], line["dport"]} & set(PORTS)]


def key(line):
    """What rollups merge by (output/pending.py): the flow, a drop's reason, loss or not."""
    return line["entity_id"], line.get("reason"), line.get("loss")


@requires_root
def test_a_three_flow_storm_gives_a_line_per_flow_a_second_and_every_record():
    ns = Netns()
    oracle = rollup = None
    try:
        for port in PORTS:
            ns.drop_one_in(5, port)
        # Pipes of 1 MiB: the oracle never falls behind the tests' reader
        # thread on a busy machine, and so never merges lines.
        oracle = ProbeProcess(pipe_bytes=PIPE_BYTES)
        started = time.monotonic()
        rollup = ProbeProcess("--interval", "1", pipe_bytes=PIPE_BYTES)
        before = ns.counters()
        senders = [ns.spawn("--port", str(port), "--seconds", str(SECONDS)) for port in PORTS]
        time.sleep(SECONDS)
        # Lifted before the flows close, so none waits out a long backoff.
        ns.lift_loss()
        for sender in senders:
            merged_lines(sender.communicate(timeout=300)[0])
        for port in PORTS:
            ns.wait_settled(port)
        after = ns.counters()
        time.sleep(1.5)  # the interval's end, then the ring's last records
        assert [oracle.stop(), rollup.stop()] == [0, 0]
        elapsed = time.monotonic() - started
        each, rolled = storm_lines(oracle, ns.inode), storm_lines(rollup, ns.inode)
        err_layout = rollup.err_layout
    finally:
        for probe in (oracle, rollup):
            if probe is not None:
                probe.kill()
        ns.close()
    delta = {k: after[k] - before.get(k, 0) for k in after}
    records = [line for line in each if line.get("kind") != "drop"]
    lines = [line for line in rolled if line.get("kind") != "drop"]
    # Ends of intervals within the rollup probe's life, and the one at its stop.
    intervals = int(elapsed) + 1
    per_key = {}
    for line in rolled:
        per_key[key(line)] = per_key.get(key(line), 0) + 1
    flows = {key(line) for line in lines}
    print(f"{len(records)} records on {len(flows)} flows as {len(lines)} lines, "
          f"{len(rolled) - len(lines)} drop lines on {len(per_key) - len(flows)} reasons, "
          f"in {elapsed:.1f} s ({intervals} intervals at most)")
    assert not any("lost" in line for line in each + rolled)
    # The oracle merged nothing: a line per record.
    assert records and not any("count" in line for line in records)
    # At most one line per flow (and drop reason) per interval.
    assert max(per_key.values()) <= intervals, per_key
    assert len(lines) <= len(flows) * intervals and len(flows) <= len(PORTS) * 2
    assert len({line["entity_id"] for line in lines if line["dport"] in PORTS}) == len(PORTS)
    # Σsegs exact, and the records all there.
    check_segs(sum(line["segs"] for line in lines), delta, err_layout)
    assert sum(line["segs"] for line in lines) == sum(line["segs"] for line in records)
    assert sum(line.get("count", 1) for line in lines) == len(records) > len(lines)
    assert all(line.get("count", 2) >= 2 for line in lines)
    drops = [line for line in each if line.get("kind") == "drop"]
    assert (sum(line["segs"] for line in rolled if line.get("kind") == "drop")
            == sum(line["segs"] for line in drops))
