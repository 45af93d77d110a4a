"""Filters on the real kernel: each keeps exactly the lines that match (the
lines an unfiltered probe beside it made of the same records, that match);
those applied in the kernel (ports, family, namespace, drop reasons) give
the ring no record of the traffic they leave out, counted by the probe
itself (the last stderr line) and by the drop program's own map."""

import subprocess
import sys
import time

import pytest

from xctl_probe.kernel.drop_policy import COUNTS_MAP

from lab.accounting import check_segs
from lab.btf import kernel_names_drop_reasons
from lab.filtered import Probes, drops_by_port, record_keys, retransmissions, segs_by_flow
from lab.marks import requires_root
from lab.netns import LAB, Netns, merged_lines
from lab.programs import probe_map

pytestmark = requires_root

SECONDS = 3.0


def storms(plan, seconds=SECONDS):
    """Loss storms side by side: ``plan`` is [(netns, port, family)]; each
    namespace drops one packet in five towards its ports. The counters of
    each namespace over them."""
    for ns, port, _ in plan:
        ns.drop_one_in(5, port)
    spaces = list({id(ns): ns for ns, _, _ in plan}.values())
    before = {id(ns): ns.counters() for ns in spaces}
    procs = [ns.spawn("--port", str(port), "--seconds", str(seconds), "--family", family)
             for ns, port, family in plan]
    time.sleep(seconds)
    for ns in spaces:
        ns.lift_loss()
    for proc in procs:
        proc.communicate(timeout=300)
    for ns, port, _ in plan:
        ns.wait_settled(port)
    return {ns.inode: {k: v - before[id(ns)].get(k, 0) for k, v in ns.counters().items()}
            for ns in spaces}


def test_ports_family_and_netns_leave_the_ring_nothing_of_what_they_filter_out():
    a, b = Netns(), Netns()
    p, q, m = 9610, 9611, 9612
    probes = None
    try:
        probes = Probes(["--netns", str(a.inode), "--port", str(m), "--family", "ipv4"],
                        ["--netns", f"/run/netns/{b.name}", "--port", str(q)],
                        ["--netns", a.name, "--family", "ipv6"])
        delta = storms([(a, p, "4"), (a, q, "6"), (a, m, "m"), (b, p, "4")])
        every, mapped, none, ipv6 = probes.stop()
    finally:
        if probes is not None:
            probes.kill()
        a.close()
        b.close()
    # The unfiltered probe saw all four storms, to the segment.
    for ns in (a, b):
        check_segs(sum(e["segs"] for e in retransmissions(every.lines, ns.inode)),
                   delta[ns.inode], every.err_layout)
    assert all(drops_by_port(every.lines, a.inode).get(port) for port in (p, q, m))
    # B on port q: no such traffic (B stormed on p, A on q): not one record.
    print(f"records: unfiltered {every.records}, --netns B --port q {none.records}, "
          f"--port m --family ipv4 {mapped.records}, --family ipv6 {ipv6.records}")
    assert (none.records, none.lines) == (0, [])
    # The IPv4-mapped flow is ipv4, as lines say it, and the only one on its port.
    ours = [e for e in every.lines if e["netns"] == a.inode and m in (e["sport"], e["dport"])]
    assert ours and {e["family"] for e in ours} == {"ipv4"}
    assert segs_by_flow(retransmissions(mapped.lines, a.inode)) == segs_by_flow(
        retransmissions(ours, a.inode))
    assert drops_by_port(mapped.lines, a.inode) == {m: drops_by_port(every.lines, a.inode)[m]}
    assert all(e["netns"] == a.inode and m in (e["sport"], e["dport"]) for e in mapped.lines)
    # IPv6: only the flow on q, in A.
    v6 = [e for e in every.lines if e["netns"] == a.inode and e["family"] == "ipv6"]
    assert v6 and {e["sport"] for e in v6 if e.get("kind") == "drop"} == {q}
    assert segs_by_flow(retransmissions(ipv6.lines, a.inode)) == segs_by_flow(
        retransmissions(v6, a.inode))
    assert drops_by_port(ipv6.lines, a.inode) == {q: drops_by_port(every.lines, a.inode)[q]}
    assert all(e["netns"] == a.inode and e["family"] == "ipv6" for e in ipv6.lines)
    assert every.lost == mapped.lost == ipv6.lost == 0


@pytest.mark.skipif(not kernel_names_drop_reasons(), reason="the kernel names no drop reasons")
def test_a_reason_not_asked_for_gets_no_record():
    ns = Netns()
    port, closed = 9620, 9621
    probes = None
    try:
        probes = Probes(["--reason", "netfilter_drop"], ["--reason", "SKB_DROP_REASON_NO_SOCKET"])
        ns.drop_one_in(5, port)
        ns.traffic(port, SECONDS)
        for _ in range(20):
            ns.knock(closed)  # a SYN to a closed port: dropped, NO_SOCKET
        ns.wait_settled(port)
        counts = [{code: sum(value["by_state"]) for code, value in
                   probe_map(probe.proc.pid, COUNTS_MAP).items()}
                  for probe in [probes.all, *probes.filtered]]
        every, netfilter, no_socket = probes.stop()
    finally:
        if probes is not None:
            probes.kill()
        ns.close()
    codes = {e["reason"]: e["reason_code"] for e in every.lines if e.get("kind") == "drop"}
    nf, ns_code = codes["NETFILTER_DROP"], codes["NO_SOCKET"]
    print(f"drop records by reason: unfiltered NETFILTER_DROP {counts[0][nf]}, NO_SOCKET "
          f"{counts[0][ns_code]}; --reason NETFILTER_DROP: {counts[1][nf]}, {counts[1][ns_code]};"
          f" --reason NO_SOCKET: {counts[2][nf]}, {counts[2][ns_code]}")
    # Machine-wide: each filtered probe's drop program recorded its reason only.
    assert counts[0][nf] and counts[0][ns_code]
    assert [code for code, n in counts[1].items() if n] == [nf]
    assert [code for code, n in counts[2].items() if n] == [ns_code]
    # And their rings took those records and no other: the storm's
    # retransmissions, which the unfiltered probe saw, reserved nothing there.
    assert any(e.get("kind") != "drop" for e in every.lines if e["netns"] == ns.inode)
    assert (netfilter.records, no_socket.records) == (sum(counts[1].values()),
                                                     sum(counts[2].values()))
    # Only drop lines, of the reason asked for, and all of them of the test's namespace.
    for kept, name in ((netfilter, "NETFILTER_DROP"), (no_socket, "NO_SOCKET")):
        assert {(e.get("kind"), e["reason"]) for e in kept.lines} == {("drop", name)}
        theirs = [e for e in every.lines if e.get("reason") == name]
        assert drops_by_port(kept.lines, ns.inode) == drops_by_port(theirs, ns.inode)
    assert drops_by_port(no_socket.lines, ns.inode) == {closed: 20}


@pytest.fixture
def job_cgroup(job_cgroups):
    return job_cgroups("xpt-filter", "4343", step=False)


def test_pid_comm_job_cgroup_and_kind_keep_exactly_the_matching_lines(job_cgroup):
    ns = Netns()
    keep, other = 9630, 9631
    procs = []
    probes = None
    try:
        # The kept sender in the job's cgroup (before `ip netns exec`, which
        # mounts a /sys without cgroups), the other beside it; both wait to send.
        procs.append(subprocess.Popen(
            ["sh", "-c", f'echo $$ > {job_cgroup}/cgroup.procs && exec "$@"', "sh",
             *ns.inside(sys.executable, str(LAB / "traffic.py"), "--port", str(keep),
                        "--seconds", str(SECONDS), "--wait-go", "--name-hex",
                        b"xpt-keep".hex())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        procs.append(ns.spawn("--port", str(other), "--seconds", str(SECONDS), "--wait-go",
                              "--name-hex", b"xpt-other".hex()))
        kept_pid = merged_lines(procs[0].stdout.readline())["pid"]
        probes = Probes(["--pid", str(kept_pid), "--job", "4343"],
                        ["--comm", "xpt-other", "--kind", "fast", "--kind", "tlp"],
                        ["--cgroup", str(job_cgroup)])
        # Only once every probe is attached: the senders connected before
        # them, and a handshake's retransmission in between would reach
        # only the probes that had started.
        ns.drop_one_in(5, keep)
        ns.drop_one_in(5, other)
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        time.sleep(SECONDS)
        ns.lift_loss()
        for proc in procs:
            proc.communicate(timeout=300)
        ns.wait_settled(keep)
        ns.wait_settled(other)
        every, by_pid_job, by_comm_kind, by_cgroup = probes.stop()
    finally:
        if probes is not None:
            probes.kill()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        ns.close()
    cgroup_id = job_cgroup.stat().st_ino
    ours = retransmissions(every.lines, ns.inode)
    # One process holds both ends of each flow: every line names it.
    assert ours and all("pid" in e for e in ours)
    # The cgroup is the kernel's, in the record: the same in every probe.
    wanted = [e for e in ours if e.get("cgroup_id") == cgroup_id]
    assert all(e.get("cgroup_id") == cgroup_id for e in by_cgroup.lines)
    assert wanted and segs_by_flow(retransmissions(by_cgroup.lines, ns.inode)) == segs_by_flow(
        wanted)
    # A client's records carry their owner from the kernel (remembered at
    # connect()): every probe names the same one, and there the filtered
    # probes keep exactly the lines that match. The servers' ends are named
    # from the kernel's socket holders and /proc, by each probe as it makes
    # the line: one may name an end another could not (a socket closed
    # before it asked), as the owner tests allow (at least 99 % named).
    cases = [
        (by_pid_job, lambda e: e.get("pid") == kept_pid and e.get("job_id") == "4343", True),
        (by_comm_kind, lambda e: e.get("comm") == "xpt-other" and e.get("kind") in ("fast",
                                                                                    "tlp"), False),
    ]
    for kept, matches, whole_flows in cases:
        # Nothing that does not match, anywhere on the machine ...
        assert all(matches(e) for e in kept.lines)
        # ... and the retransmission lines of the test's that match.
        theirs = retransmissions(kept.lines, ns.inode)
        wanted = record_keys([e for e in ours if matches(e)])
        got = record_keys(theirs)
        clients = [e for e in ours if e["dport"] in (keep, other) and matches(e)]
        kept_clients = [e for e in theirs if e["dport"] in (keep, other)]
        print(f"{sum(wanted.values())} of {len(ours)} lines match; the filtered probe kept "
              f"{sum(got.values())}; of the clients' {len(clients)}, {len(kept_clients)}")
        assert clients and not got - wanted
        if whole_flows:
            # Every line of a client's flow matches: its Σsegs, exact whatever
            # runs the kernel skipped for one probe or the other.
            assert segs_by_flow(kept_clients) == segs_by_flow(clients)
        if not (every.lost or kept.lost):
            # No run skipped: the same records in both probes.
            assert record_keys(kept_clients) == record_keys(clients)
        assert 100 * sum((wanted - got).values()) <= sum(wanted.values())
