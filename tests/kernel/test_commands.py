"""The commands beside the stream: check, describe, unit, and --duration,
each run for real on this kernel."""

import json
import re
import subprocess
import time

import msgspec
import pytest

from xctl_probe.commands.unit import PERMANENT_FAILURES
from xctl_probe.kernel import capabilities
from xctl_probe.kernel.preconditions import KERNEL_BTF
from xctl_probe.kernel.ticks import configured_hz
from xctl_probe.meaning.event import TransportDrop

from lab.accounting import check_segs, flow_lines
from lab.btf import has_struct
from lab.cli import EXIT_NO_PRIVILEGE, as_nobody_with, run_probe
from lab.marks import requires_root
from lab.netns import Netns
from lab.probe import ProbeProcess
from lab.programs import wait_programs_gone
from lab.scenarios import run_storm
from lab.waits import patient
from lab.xctl_contract import check_probe_line

pytestmark = requires_root

FINDING = re.compile(r"^(ok|warn|FAIL) +[a-z]+: \S")
HOOKS = ["tcp:tcp_retransmit_skb", "tcp:tcp_retransmit_synack", "sock:inet_sock_set_state",
         "tcp:tcp_destroy_sock", "skb:kfree_skb"]


def findings(result):
    lines = result.stdout.decode().splitlines()
    assert lines and all(FINDING.match(line) for line in lines), lines
    assert result.stderr == b""
    return lines


def test_check_on_this_host():
    result = run_probe("check")
    lines = findings(result)
    assert result.returncode == 0, lines
    assert not [line for line in lines if line.startswith("FAIL")]
    assert [line.split(": ")[1].split()[0] for line in lines if " hook: " in line] == HOOKS
    layout = "6.17+" if has_struct(KERNEL_BTF, "trace_event_raw_tcp_retransmit_skb") else "before"
    assert any(line.startswith("ok   layout: ") and layout in line for line in lines)
    assert any(re.match(r"ok   drops: \d+ drop reasons named by this kernel's BTF; \d+ are no "
                        r"loss, skipped in the kernel unless --drops all$", line)
               for line in lines), lines
    assert any(line.startswith("ok   owners: ") for line in lines)
    configured = configured_hz()
    if configured is not None:
        assert f"ok   hz: HZ {configured}, from the kernel config" in lines, lines


def test_check_without_cap_bpf_fails_with_the_probes_own_code():
    without = [c for c in capabilities.SERVICE if c != "CAP_BPF"]
    result = run_probe("check", prefix=as_nobody_with(without))
    lines = findings(result)
    assert result.returncode == EXIT_NO_PRIVILEGE, lines
    assert any(line.startswith("FAIL capabilities: ") and "lacks CAP_BPF" in line
               for line in lines)


def test_check_with_the_service_set_finds_owners_and_warns_of_environments():
    """The unit's set names owners (the kernel's iterator needs no more), and
    other processes' environment is out of its reach: a warning, not a failure."""
    result = run_probe("check", prefix=as_nobody_with(capabilities.SERVICE))
    lines = findings(result)
    assert result.returncode == 0, lines
    assert any(line.startswith("ok   owners: ") for line in lines), lines
    assert any(line.startswith("warn environment: ") and "CAP_SYS_PTRACE" in line
               for line in lines), lines
    assert sum(" hook: " in line for line in lines) == len(HOOKS)


def test_describe_is_json_whose_schema_holds_real_lines():
    """The schema describe publishes is msgspec's of TransportDrop, the Struct
    the probe encodes every line from, so decoding a line as TransportDrop
    applies every constraint of that schema (types, enums, ranges, patterns,
    required fields)."""
    result = run_probe("describe")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["version"] and document["event_type"] == "transport.drop"
    assert document["hooks"] == HOOKS
    assert document["layout"]["err_argument"] is has_struct(
        KERNEL_BTF, "trace_event_raw_tcp_retransmit_skb")
    assert document["schema"] == msgspec.json.schema(TransportDrop)
    run = run_storm(port=9620, seconds=2.0)
    assert run.lines
    for raw in run.lines:
        check_probe_line(raw)  # xctl's own rules
        # Decoded under the schema and encoded again, byte for byte the same
        # line: no field the schema does not know, none it drops.
        assert msgspec.json.encode(msgspec.json.decode(raw, type=TransportDrop)) + b"\n" == raw
    # The schema says something: lines that break the contract fail it.
    good = json.loads(run.lines[0])
    for bad in ({**good, "pid": 0}, {**good, "value": 12.5}, {**good, "kind": "lost"},
                {k: v for k, v in good.items() if k != "segs"}, {**good, "dport": 70000},
                {**good, "ts": -1}, {**good, "entity_id": "pid-7"}):
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(json.dumps(bad), type=TransportDrop)


def test_duration_stops_as_sigterm_would():
    ns = Netns()
    try:
        ns.drop_one_in(5, 9630)
        probe = ProbeProcess("--duration", "6")
        started = time.monotonic()
        before = ns.counters()
        ns.traffic(9630, 2.0)
        ns.wait_settled(9630)
        after = ns.counters()
        rc = probe.proc.wait(timeout=patient(30))  # on its own: nobody signals it
        elapsed = time.monotonic() - started
        probe.stop()
    finally:
        probe.kill()
        ns.close()
    assert rc == 0 and 5.5 <= elapsed < 15, (rc, elapsed)
    assert re.match(r"xctl-probe-ebpf: stopped after \d+ lines from \d+ records; 0 records lost\n$",
                    probe.stderr_text())
    events = flow_lines([check_probe_line(raw) for raw in probe.lines], 9630, ns.inode)
    delta = {k: after[k] - before.get(k, 0) for k in after}
    check_segs(sum(e["segs"] for e in events), delta, probe.err_layout)


@pytest.mark.parametrize("value", ["-1", "nan", "soon"])
def test_duration_rejects_bad_values(value):
    result = run_probe("--duration", value)
    assert result.returncode == 2 and result.stdout == b""
    assert result.stderr.decode().count("\n") == 1 and "--duration" in result.stderr.decode()


def test_unit_is_accepted_by_systemd_and_grants_only_the_service_set(tmp_path):
    result = run_probe("unit", "--exec", "/usr/bin/true")
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode()
    unit = tmp_path / "xctl-probe-ebpf.service"
    unit.write_text(text)
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                            text=True)
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr
    settings = dict(line.split("=", 1) for line in text.splitlines()
                    if "=" in line and not line.startswith("#"))
    assert settings["ExecStart"] == "/usr/bin/true"
    assert settings["AmbientCapabilities"].split() == capabilities.SERVICE
    assert settings["CapabilityBoundingSet"].split() == capabilities.SERVICE
    assert settings["NoNewPrivileges"] == "yes" and settings["DynamicUser"] == "yes"
    # BPF memory counts against it before Linux 5.11.
    assert settings["LimitMEMLOCK"] == "infinity"
    assert settings["ProtectSystem"] == "strict"
    # Where the service may write a refused program's verifier log, and it stays.
    assert settings["LogsDirectory"] == "xctl-probe-ebpf"
    assert [int(c) for c in settings["RestartPreventExitStatus"].split()] == list(
        PERMANENT_FAILURES)


BENCH_KEYS = {"events_per_s", "drain_per_s", "drain_ratio", "bpf_ns_per_event", "startup_ms",
              "rss_mb", "idle_cpu_pct", "programs_ns_per_call", "drop_ns_reported",
              "drop_ns_ignored", "drop_events_per_s", "flood_drops_per_s", "flood_sent",
              "flood_dropped", "flood_segs", "flood_lines_per_s", "flood_cpu_pct", "flood_rss_mb",
              "flood_drop_ns_per_call", "events_per_s_metrics", "metrics_ratio"}


def test_bench_prints_its_figures_and_ends_with_them_as_json():
    """Small sizes: this checks that every figure is measured and reported,
    not how fast anything is (that is for `make bench` to print)."""
    result = run_probe("bench", "--json", "--records", "20000", "--flows", "8", "--runs", "1",
                       "--storm-seconds", "3", "--starts", "1", "--idle-seconds", "1",
                       "--flood-seconds", "2", timeout=240)
    lines = result.stdout.decode().splitlines()
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    figures = json.loads(lines[-1])
    assert set(figures) == BENCH_KEYS
    assert "20,000 synthetic records on 8 flows" in lines[0] and "(20,000 lines)" in lines[0]
    assert figures["events_per_s"] > 0 and figures["drain_per_s"] > figures["events_per_s"]
    # The same path with --metrics' tap, three runs of each, and the ratio of their medians.
    assert lines[2].startswith("events_per_s_metrics") and "3 runs each" in lines[2]
    assert figures["events_per_s_metrics"] > 0
    assert figures["metrics_ratio"] == pytest.approx(
        figures["events_per_s_metrics"] / figures["events_per_s"], abs=5e-5)
    # The same path with records of dropped packets, named by this kernel's BTF.
    assert lines[3].startswith("drop_events_per_s") and "SOCKET_RCVBUFF" in lines[3]
    assert figures["drop_events_per_s"] > 0
    # Four decimals in the JSON.
    assert figures["drain_ratio"] == pytest.approx(
        figures["events_per_s"] / figures["drain_per_s"], abs=5e-5)
    # A real storm ran under the probe: the retransmission program was timed.
    assert figures["bpf_ns_per_event"] > 0
    assert figures["programs_ns_per_call"]["xp_tcp_retransmit_skb"] == figures["bpf_ns_per_event"]
    # The holders' iterator ran too: the storm's sockets were looked up.
    assert set(figures["programs_ns_per_call"]) == {
        "xp_tcp_retransmit_skb", "xp_tcp_retransmit_synack", "xp_inet_sock_set_state",
        "xp_tcp_destroy_sock", "xp_kfree_skb", "xp_socket_holders"}
    assert figures["startup_ms"] > 0 and figures["rss_mb"] > 0 and figures["idle_cpu_pct"] >= 0
    # The storm's nftables drops ran the drop program, and so did the ignored UDP drops.
    assert figures["drop_ns_reported"] > 0 and figures["drop_ns_ignored"] > 0
    # The flood: every SYN dropped, and every drop in the lines' segs.
    assert figures["flood_dropped"] == figures["flood_sent"] == figures["flood_segs"] > 0
    assert figures["flood_lines_per_s"] > 0 and figures["flood_drop_ns_per_call"] > 0
    # It leaves nothing behind: no namespace, no program.
    assert "xctl-bench" not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                              text=True).stdout
    wait_programs_gone()


def test_bench_rejects_a_bad_value_in_one_line():
    result = run_probe("bench", "--records", "10")
    assert result.returncode == 2 and result.stdout == b""
    stderr = result.stderr.decode()
    assert stderr.count("\n") == 1 and "--records" in stderr and "Traceback" not in stderr
