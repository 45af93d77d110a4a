"""The event contract, the flow naming and the kind of a line, without a
kernel: synthetic records through the probe's own path (LineMaker)."""

import os
import socket

import msgspec
import pytest

from xctl_probe.kernel.decoder import FLAG_HISTORY, FLAG_UNDO_MARKER, SOURCE_CLOSE, SOURCE_SYNACK

from lab.records import (CA_LOSS, CA_OPEN, CA_RECOVERY, FIN_WAIT1, ICSK_TIME_LOSS_PROBE,
                         ICSK_TIME_RETRANS, NEW_SYN_RECV, SYN_RECV, SYN_SENT, TCPHDR_ACK,
                         TCPHDR_FIN, TCPHDR_SYN, Holders, line)
from lab.xctl_contract import check_probe_line

SYN_ACK = TCPHDR_SYN | TCPHDR_ACK


def checked(event) -> dict:
    return check_probe_line(msgspec.json.encode(event) + b"\n")


def test_ipv4_line_meets_the_contract(tmp_path):
    event = checked(line(tmp_path, retrans=1, sent=8))
    assert event == {
        "ts": 1_700_000_005_000, "event_type": "transport.drop",
        "entity_id": "network-10.0.0.1-10.0.0.2-40000-9000", "value": "12.5",
        "family": "ipv4", "saddr": "10.0.0.1", "daddr": "10.0.0.2", "sport": 40000,
        "dport": 9000, "segs": 1, "err": 0, "state": "ESTABLISHED", "kind": "fast",
        "netns": 4026531840,
    }
    assert list(event)[:4] == ["ts", "event_type", "entity_id", "value"]


def test_ipv6_flow(tmp_path):
    event = checked(line(tmp_path, family=socket.AF_INET6,
                         saddr=socket.inet_pton(socket.AF_INET6, "fd00::1"),
                         daddr=socket.inet_pton(socket.AF_INET6, "fd00::2")))
    assert event["family"] == "ipv6"
    assert event["entity_id"] == "network-fd00::1-fd00::2-40000-9000"


def test_ipv4_mapped_ipv6_socket_is_ipv4_on_the_wire(tmp_path):
    mapped = lambda a: bytes(10) + b"\xff\xff" + socket.inet_aton(a)  # noqa: E731
    event = line(tmp_path, family=socket.AF_INET6, saddr=mapped("127.0.0.1"),
                 daddr=mapped("127.0.0.2"))
    assert (event.family, event.saddr, event.daddr) == ("ipv4", "127.0.0.1", "127.0.0.2")


def test_synack_kind_and_failed_retransmission(tmp_path):
    event = checked(line(tmp_path, source=SOURCE_SYNACK, tcp_flags=SYN_ACK, state=NEW_SYN_RECV,
                         err=-105))
    assert (event["kind"], event["state"], event["err"], event["err_name"]) == (
        "synack", "NEW_SYN_RECV", -105, "ENOBUFS")


@pytest.mark.parametrize("err,name", [
    (0, None), (-105, "ENOBUFS"), (-1, "EPERM"), (1, "NET_XMIT_DROP"), (2, "NET_XMIT_CN"),
    (-4000, "E4000"), (7, "NET_XMIT_7"),
])
def test_err_is_named_errno_or_qdisc_answer(err, name, tmp_path):
    event = line(tmp_path, err=err)
    assert (event.err, event.err_name) == (err, name)


def test_unknown_state_and_close_record(tmp_path):
    event = line(tmp_path, state=99, source=SOURCE_CLOSE, flags=FLAG_HISTORY)
    assert event.state == "UNKNOWN_99" and event.kind is None


def test_owner_fields_when_known_and_absent_when_not(tmp_path):
    os.makedirs(tmp_path / "4242")
    (tmp_path / "4242" / "comm").write_text("trainer\n")
    (tmp_path / "4242" / "environ").write_bytes(b"SLURM_JOB_ID=981\0")
    event = checked(line(tmp_path, holders=Holders({555: {4242}}), ino=555, srtt_us=250,
                         cgroup_id=77))
    assert list(event)[:6] == ["ts", "event_type", "entity_id", "job_id", "pid", "value"]
    assert (event["pid"], event["comm"], event["job_id"]) == (4242, "trainer", "981")
    assert (event["rtt_us"], event["cgroup_id"]) == (250, 77)
    bare = checked(line(tmp_path))
    assert not {"pid", "comm", "node_id", "job_id", "lost", "rtt_us", "cgroup_id"} & bare.keys()


@pytest.mark.parametrize("fields,kind", [
    (dict(source=SOURCE_SYNACK, tcp_flags=SYN_ACK, state=NEW_SYN_RECV), "synack"),
    (dict(tcp_flags=SYN_ACK, state=SYN_RECV, ca_state=CA_LOSS, flags=FLAG_UNDO_MARKER),
     "synack"),
    (dict(tcp_flags=TCPHDR_SYN, state=SYN_SENT, ca_state=CA_LOSS, flags=FLAG_UNDO_MARKER),
     "syn"),
    (dict(tcp_flags=TCPHDR_SYN, state=SYN_SENT, ca_state=CA_LOSS), "syn"),
    # A Fast Open server still in SYN_RECV sends and recovers data: the
    # segment, not the socket's state, says it is no SYN-ACK.
    (dict(state=SYN_RECV, ca_state=CA_RECOVERY), "fast"),
    (dict(state=SYN_RECV, ca_state=CA_LOSS, flags=FLAG_UNDO_MARKER), "rto"),
    (dict(ca_state=CA_LOSS, pending=0, flags=FLAG_UNDO_MARKER), "rto"),
    (dict(state=FIN_WAIT1, ca_state=CA_LOSS, flags=FLAG_UNDO_MARKER), "rto"),  # orphaned
    (dict(tcp_flags=TCPHDR_ACK | TCPHDR_FIN, ca_state=CA_LOSS, flags=FLAG_UNDO_MARKER), "rto"),
    # Loss without the timer: a path MTU drop, or Fast Open data not acknowledged.
    (dict(ca_state=CA_LOSS, pending=ICSK_TIME_RETRANS), "noncongestion"),
    (dict(ca_state=CA_RECOVERY, pending=ICSK_TIME_LOSS_PROBE), "fast"),
    (dict(ca_state=CA_OPEN, pending=ICSK_TIME_LOSS_PROBE), "tlp"),
    (dict(ca_state=CA_OPEN, pending=ICSK_TIME_RETRANS), None),
    (dict(source=SOURCE_CLOSE, tcp_flags=0, ca_state=CA_LOSS,
          flags=FLAG_HISTORY | FLAG_UNDO_MARKER), None),
])
def test_kind_rule(fields, kind, tmp_path):
    assert line(tmp_path, **fields).kind == kind


@pytest.mark.parametrize("hz,fields,timers", [
    # Jiffies to milliseconds, rounded down: 51 jiffies at HZ 250 are 204 ms.
    (250, dict(rto=51, backoff=2, ack_age=55), (204, 2, 220)),
    (1000, dict(rto=3000, backoff=7, ack_age=1), (3000, 7, 1)),
    (300, dict(rto=61, backoff=0, ack_age=299), (203, 0, 996)),
    # SYN_SENT has heard nothing from its peer yet.
    (250, dict(rto=250, backoff=1, ack_age=9, state=SYN_SENT, tcp_flags=TCPHDR_SYN),
     (1000, 1, None)),
    # HZ unknown: no milliseconds, the count of timeouts stays.
    (None, dict(rto=51, backoff=3, ack_age=55), (None, 3, None)),
    # No socket of its own (a request socket's SYN-ACK): no timers at all.
    (250, dict(rto=0, backoff=0, ack_age=0), (None, None, None)),
])
def test_timers_in_milliseconds(hz, fields, timers, tmp_path):
    event = line(tmp_path, hz=hz, **fields)
    assert (event.rto_ms, event.backoff, event.stalled_ms) == timers
