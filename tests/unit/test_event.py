"""From decoded record to xctl line, without a kernel: the event contract,
the flow naming and the rate, on synthetic records."""

import socket

import msgspec
import pytest

from xctl_probe.context.owners import Owner
from xctl_probe.kernel.decoder import (FLAG_UNDO_MARKER, SOURCE_CLOSE, SOURCE_RETRANSMIT,
                                       SOURCE_SYNACK, Record)
from xctl_probe.meaning.event import TCPHDR_ACK, TCPHDR_SYN, err_name, kind_of, to_event
from xctl_probe.meaning.flows import FlowRates, format_rate

from lab.xctl_contract import check_probe_line

SECOND = 1_000_000_000
TCPHDR_FIN = 0x01
SYN_ACK = TCPHDR_SYN | TCPHDR_ACK


def record(**fields):
    values = dict(ts_ns=5 * SECOND, cookie=4097, ino=0, cgroup_id=0,
                  netns=4026531840, skb_segs=1, retrans=1, prev_retrans=0, sent=100, tgid=0,
                  srtt_us=0, err=0, flags=0, family=socket.AF_INET, sport=40000, dport=9000,
                  tcp_flags=TCPHDR_ACK, state=1, source=SOURCE_RETRANSMIT, ca_state=3, pending=1,
                  saddr=socket.inet_aton("10.0.0.1") + bytes(12),
                  daddr=socket.inet_aton("10.0.0.2") + bytes(12), reason=0, ifindex=0,
                  owner_tgid=0, rto=0, backoff=0, ack_age=0, owner_comm=bytes(16))
    values.update(fields)
    return Record(**values)


def line(event) -> bytes:
    return msgspec.json.encode(event) + b"\n"


def test_ipv4_line_meets_the_contract():
    event = check_probe_line(line(to_event(record(), 1, 1_700_000_000_123, "12.5")))
    assert event == {
        "ts": 1_700_000_000_123, "event_type": "transport.drop",
        "entity_id": "network-10.0.0.1-10.0.0.2-40000-9000", "value": "12.5",
        "family": "ipv4", "saddr": "10.0.0.1", "daddr": "10.0.0.2", "sport": 40000,
        "dport": 9000, "segs": 1, "err": 0, "state": "ESTABLISHED", "kind": "fast",
        "netns": 4026531840,
    }
    assert list(event)[:4] == ["ts", "event_type", "entity_id", "value"]


def test_ipv6_flow():
    event = check_probe_line(line(to_event(
        record(family=socket.AF_INET6, saddr=socket.inet_pton(socket.AF_INET6, "fd00::1"),
               daddr=socket.inet_pton(socket.AF_INET6, "fd00::2")), 1, 1, "0")))
    assert event["family"] == "ipv6"
    assert event["entity_id"] == "network-fd00::1-fd00::2-40000-9000"


def test_ipv4_mapped_ipv6_socket_is_ipv4_on_the_wire():
    mapped = lambda a: bytes(10) + b"\xff\xff" + socket.inet_aton(a)  # noqa: E731
    event = to_event(record(family=socket.AF_INET6, saddr=mapped("127.0.0.1"),
                            daddr=mapped("127.0.0.2")), 1, 1, "0")
    assert (event.family, event.saddr, event.daddr) == ("ipv4", "127.0.0.1", "127.0.0.2")


def test_synack_kind_failed_retransmission_and_lost():
    event = check_probe_line(line(to_event(
        record(source=SOURCE_SYNACK, tcp_flags=SYN_ACK, state=12, err=-105), 1, 1, "50",
        lost=3)))
    assert (event["kind"], event["state"], event["err"], event["err_name"], event["lost"]) == (
        "synack", "NEW_SYN_RECV", -105, "ENOBUFS", 3)


@pytest.mark.parametrize("err,name", [
    (0, None), (-105, "ENOBUFS"), (-1, "EPERM"), (1, "NET_XMIT_DROP"), (2, "NET_XMIT_CN"),
    (-4000, "E4000"), (7, "NET_XMIT_7"),
])
def test_err_is_named_errno_or_qdisc_answer(err, name):
    assert err_name(err) == name


def test_unknown_state_and_close_record():
    event = to_event(record(state=99, source=SOURCE_CLOSE), 1, 1, "0")
    assert event.state == "UNKNOWN_99" and event.kind is None


def test_owner_fields_when_known_and_absent_when_not():
    owner = Owner(pid=4242, comm="trainer\\xff", job_id="981")
    event = check_probe_line(line(to_event(record(srtt_us=250, cgroup_id=77), 1, 1, "0",
                                           owner=owner)))
    assert list(event)[:6] == ["ts", "event_type", "entity_id", "job_id", "pid", "value"]
    assert (event["pid"], event["comm"], event["job_id"]) == (4242, "trainer\\xff", "981")
    assert (event["rtt_us"], event["cgroup_id"]) == (250, 77)
    bare = check_probe_line(line(to_event(record(), 1, 1, "0")))
    assert not {"pid", "comm", "node_id", "job_id", "lost", "rtt_us", "cgroup_id"} & bare.keys()


@pytest.mark.parametrize("fields,kind", [
    (dict(source=SOURCE_SYNACK, tcp_flags=SYN_ACK, state=12), "synack"),
    (dict(tcp_flags=SYN_ACK, state=3, ca_state=4, flags=FLAG_UNDO_MARKER), "synack"),
    (dict(tcp_flags=TCPHDR_SYN, state=2, ca_state=4, flags=FLAG_UNDO_MARKER), "syn"),
    (dict(tcp_flags=TCPHDR_SYN, state=2, ca_state=4), "syn"),
    # A Fast Open server still in SYN_RECV sends and recovers data: the
    # segment, not the socket's state, says it is no SYN-ACK.
    (dict(state=3, ca_state=3), "fast"),
    (dict(state=3, ca_state=4, flags=FLAG_UNDO_MARKER), "rto"),
    (dict(ca_state=4, pending=0, flags=FLAG_UNDO_MARKER), "rto"),
    (dict(state=4, ca_state=4, flags=FLAG_UNDO_MARKER), "rto"),  # FIN_WAIT1, orphaned
    (dict(tcp_flags=TCPHDR_ACK | TCPHDR_FIN, ca_state=4, flags=FLAG_UNDO_MARKER), "rto"),
    # Loss without the timer: a path MTU drop, or Fast Open data not acknowledged.
    (dict(ca_state=4, pending=1), "noncongestion"),
    (dict(ca_state=3, pending=5), "fast"),
    (dict(ca_state=0, pending=5), "tlp"),
    (dict(ca_state=0, pending=1), None),
    (dict(source=SOURCE_CLOSE, tcp_flags=0, ca_state=4, flags=FLAG_UNDO_MARKER), None),
])
def test_kind_rule(fields, kind):
    assert kind_of(record(**fields)) == kind


def test_first_window_is_the_connection_lifetime():
    rates = FlowRates(10 * SECOND)
    # One retransmission among 5,000 segments sent: a fraction of a percent.
    assert rates.rate(1, 5 * SECOND, retransmitted=1, sent=5000) == pytest.approx(0.02)
    assert format_rate(0.02) == "0.02"


def test_rate_over_the_window_once_the_flow_has_history():
    rates = FlowRates(10 * SECOND)
    rates.rate(1, 0, retransmitted=10, sent=100_000)
    # 10 s later: 200 of the 1,000 segments sent since were retransmissions.
    assert rates.rate(1, 10 * SECOND, retransmitted=210, sent=101_000) == pytest.approx(20.0)
    # Only what happened within the last 10 s counts.
    assert rates.rate(1, 20 * SECOND, retransmitted=211, sent=111_000) == pytest.approx(0.01)


def test_rate_bounds_wrap_and_forget():
    rates = FlowRates(SECOND, max_flows=2)
    assert rates.rate(1, 0, retransmitted=1, sent=0) == 100.0
    assert rates.rate(1, 2 * SECOND, retransmitted=1, sent=0) == 0.0
    # u32 counters wrap: the deltas still come out right.
    rates.rate(2, 0, retransmitted=0xFFFFFFFF, sent=0xFFFFFFF0)
    assert rates.rate(2, 2 * SECOND, retransmitted=9, sent=0x54) == pytest.approx(10.0)
    rates.rate(3, 0, 1, 10)
    assert len(rates) == 2  # the least recently seen flow made room
    rates.forget(3)
    assert len(rates) == 1


def test_a_flow_silent_longer_than_max_idle_is_forgotten():
    rates = FlowRates(SECOND, max_idle_ns=60 * SECOND)
    rates.rate(1, 0, retransmitted=1, sent=2)
    rates.rate(2, 30 * SECOND, retransmitted=1, sent=2)
    rates.rate(3, 61 * SECOND, retransmitted=1, sent=2)
    rates.forget_idle(61 * SECOND)
    assert set(rates._flows) == {2, 3}
    # Heard again after that: measured from the start of the connection.
    assert rates.rate(1, 62 * SECOND, retransmitted=2, sent=4) == 50.0


def test_idle_bound_is_some_windows_and_at_least_two_minutes():
    assert FlowRates(SECOND)._max_idle == 120 * SECOND
    assert FlowRates(60 * SECOND)._max_idle == 600 * SECOND


def test_storming_flow_keeps_few_samples():
    rates = FlowRates(10 * SECOND)
    for i in range(100_000):
        rates.rate(1, i * 1_000_000, retransmitted=i, sent=i * 5)
    assert len(rates.get(1).samples) <= 18


@pytest.mark.parametrize("rate,text", [(12.5, "12.5"), (100.0, "100"), (0.0, "0"),
                                       (0.004, "0"), (33.333, "33.33"), (0.005, "0.01"),
                                       (66.666, "66.67"), (10.1, "10.1"), (99.999, "100")])
def test_format_rate(rate, text):
    assert format_rate(rate) == text
